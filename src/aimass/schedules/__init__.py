"""Schedules: cron rules that start a job template or a pipeline run.

``service`` holds CRUD and ``fire_due`` (a compare-and-set on each due
schedule's ``next_run_at``, so several server processes never fire one twice);
``runner`` is the loop that calls it. Must not import the API.
"""
