"""Pipelines: small DAGs of job and action steps with conditions on earlier outputs.

``entities`` holds the spec (steps, conditions, actions) and the runs;
``conditions`` evaluates conditions and placeholders as data, never as code;
``service`` validates and stores pipelines and starts, reads and cancels runs;
``runner`` advances runs (submits ready steps, reads their jobs, performs
actions) with conditional updates, so several processes may run it. Must not
import the API.
"""
