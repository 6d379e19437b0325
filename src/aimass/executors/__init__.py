"""Executors: where a job's attempts run.

``base`` is the seam (``Executor``: submit, cancel, close, plus the exit
callback); ``local`` runs attempts as isolated processes on this node. The Ray
executor lands beside them. Executors know nothing of the database or the API:
the scheduler hands them an ``AttemptSpec`` and hears back through ``on_exit``.
"""
