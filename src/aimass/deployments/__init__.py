"""Deployments: the desired serving state (versions, traffic weights, batching, replicas).

Services here write desired state to the database; ``aimass.serving.reconciler``
makes each server process's loaded models match it. Must not import the API or
``aimass.serving``.
"""
