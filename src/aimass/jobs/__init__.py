"""Jobs: training, evaluation, batch prediction, tuning and script runs.

``entities`` re-exports the typed records (they live in ``aimass.entities.jobs``);
``service`` holds the state machine (submit, cancel, retry) and the fenced attempt
writes (leases, metrics, checkpoints, finishing) that the scheduler and the job
runtime use; ``submission``, ``log_stream`` and ``attempt_files`` are what the
job routes call. Must not import the API, the scheduler or an executor.
"""
