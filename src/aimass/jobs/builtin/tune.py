"""``tune``: an Optuna study whose trials run as child jobs, several at a time.

The tuning job asks Optuna for a trial's params, submits a child job of the
trial entry (``parent_id`` = this job) with ``register_model`` off, and tells
Optuna the child's ``metric`` output when it ends. Up to ``parallelism`` trials
run at once; the executor places them like any job. The trials so far are kept
in this job's outputs (``trials``); the best trial's model file is registered.
"""

from __future__ import annotations

import time
from typing import Any

TERMINAL = ("succeeded", "failed", "cancelled")


def _suggest(trial: Any, name: str, dim: dict[str, Any]) -> Any:
    if dim["type"] == "float":
        return trial.suggest_float(name, dim["low"], dim["high"], log=dim["log"])
    if dim["type"] == "int":
        return trial.suggest_int(name, int(dim["low"]), int(dim["high"]), log=dim["log"])
    return trial.suggest_categorical(name, dim["choices"])


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Run the study; register the best trial's model; return the best value and params."""
    import optuna

    from aimass import runtime

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = runtime.context()
    jobs = ctx.client.jobs
    sampler = optuna.samplers.TPESampler(seed=params["seed"])
    study = optuna.create_study(direction=params["direction"], sampler=sampler)
    metric = params["metric"]
    running: dict[int, Any] = {}  # child job id -> optuna trial
    trials: list[dict[str, Any]] = []
    asked = 0
    while asked < params["n_trials"] or running:
        while asked < params["n_trials"] and len(running) < params["parallelism"]:
            trial = study.ask()
            chosen = {n: _suggest(trial, n, d) for n, d in params["space"].items()}
            child = jobs.submit(
                params["entry"],
                kind="train",
                params={**params["base_params"], **chosen, "register_model": False},
                dataset=ctx.dataset,
                dataset_version=ctx.dataset_version,
                cpu=params["trial_cpu"],
                parent_id=ctx.job_id,
            )
            running[child.id] = trial
            asked += 1
            print(f"trial {trial.number}: job {child.id} {chosen}", flush=True)
        time.sleep(0.2)
        for job_id in list(running):
            job = jobs.get(job_id)
            if job.state not in TERMINAL:
                continue
            trial = running.pop(job_id)
            value = job.outputs.get(metric)
            record = {"number": trial.number, "job_id": job_id, "params": trial.params}
            if job.state == "succeeded" and isinstance(value, (int, float)):
                study.tell(trial, float(value))
                ctx.log_metric(metric, float(value), step=trial.number)
                record.update(state="complete", value=float(value))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                record.update(state="failed", reason=job.reason)
            print(f"trial {trial.number}: {record['state']} {record.get('value', '')}", flush=True)
            trials.append(record)
            ctx.set_outputs(trials=sorted(trials, key=lambda t: t["number"]))
    best = study.best_trial
    best_value = float(best.value if best.value is not None else "nan")
    best_job = next(t["job_id"] for t in trials if t["number"] == best.number)
    model_file = ctx.scratch / "best-model.skops"
    jobs.download_artifact(best_job, "model.skops", model_file)
    name = params.get("model_name") or f"{ctx.dataset}-tuned"
    version = ctx.register_model(
        name,
        model_file,
        metrics={metric: best_value},
        tags={"best_trial_job": str(best_job)},
    )
    return {
        "best_value": best_value,
        "best_params": best.params,
        "best_job_id": best_job,
        "model": version.model,
        "model_version": version.version,
    }
