"""The scheduler: a database queue placed onto an executor by one leader.

``placement`` decides (pure functions), ``leader`` makes sure one process acts,
``scheduler`` is the loop. Must not import the API.
"""
