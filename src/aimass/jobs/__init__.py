"""Jobs: training, evaluation, batch prediction, tuning and script runs.

``entities`` holds the typed records; ``service`` the state machine (submit,
cancel, retry) and the fenced attempt writes (leases, metrics, checkpoints,
finishing) that the scheduler and the job runtime use. Must not import the API,
the scheduler or an executor.
"""
