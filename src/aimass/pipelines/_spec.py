"""A pipeline's steps checked as a DAG: names, dependencies, cycles, what each step reads."""

from __future__ import annotations

from aimass.artifacts.names import validate_name
from aimass.errors import InvalidInput, Unprocessable
from aimass.pipelines.conditions import references
from aimass.pipelines.entities import AliasMetricOperand, Step


def _check_graph(steps: list[Step]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in index:
            raise Unprocessable(
                f"steps[{i}].name: {step.name!r} is used twice (also steps[{index[step.name]}])"
            )
        index[step.name] = i
    for i, step in enumerate(steps):
        for need in step.needs:
            if need == step.name:
                raise Unprocessable(f"steps[{i}].needs: step {step.name!r} needs itself")
            if need not in index:
                known = ", ".join(sorted(index))
                raise Unprocessable(
                    f"steps[{i}].needs: unknown step {need!r} (the steps are: {known})"
                )
        if len(set(step.needs)) != len(step.needs):
            raise Unprocessable(f"steps[{i}].needs: a step is listed twice")
    return index


def _check_names(step: Step, where: str) -> None:
    refs = []
    if step.action is not None:
        refs.append((step.action.model, step.action.alias, f"{where}.action"))
    if step.when is not None:
        for side, operand in (("left", step.when.left), ("right", step.when.right)):
            if isinstance(operand, AliasMetricOperand):
                metric = operand.alias_metric
                refs.append((metric.model, metric.alias, f"{where}.when.{side}.alias_metric"))
    for model, alias, at in refs:
        validate_name(model, f"{at}.model")
        validate_name(alias, f"{at}.alias")
        if alias.isdigit():
            raise InvalidInput(f"{at}.alias: an alias may not be a number: numbers name versions")


def _cycle(remaining: dict[str, Step]) -> list[str]:
    """A cycle among steps that never became ready (each needs another of them)."""
    path: list[str] = []
    current = next(iter(remaining))
    while current not in path:
        path.append(current)
        current = next(n for n in remaining[current].needs if n in remaining)
    return [*path[path.index(current) :], current]


def validate_steps(steps: list[Step]) -> list[Step]:
    """The steps with dependencies first (otherwise in the order given); Unprocessable if not a DAG.

    Refuses duplicate names, unknown or self dependencies, cycles, a path into
    a step that does not run before the step reading it, and bad model or alias names.
    """
    _check_graph(steps)
    for i, step in enumerate(steps):
        _check_names(step, f"steps[{i}]")
    remaining = {step.name: step for step in steps}
    ordered: list[Step] = []
    ancestors: dict[str, set[str]] = {}
    while remaining:
        ready = [s for s in remaining.values() if all(n in ancestors for n in s.needs)]
        if not ready:
            cycle = " -> ".join(_cycle(remaining))
            raise Unprocessable(f"steps: the dependencies form a cycle: {cycle}")
        for step in ready:
            ancestors[step.name] = set(step.needs).union(*(ancestors[n] for n in step.needs))
            ordered.append(step)
            del remaining[step.name]
    position = {step.name: i for i, step in enumerate(steps)}
    for step in ordered:
        for where, path in references(step, f"steps[{position[step.name]}]"):
            if path.step not in ancestors[step.name]:
                why = "no such step" if path.step not in ancestors else "not among its needs"
                raise Unprocessable(
                    f"{where}: reads step {path.step!r} ({why}); a step reads only the "
                    "outputs of steps it needs, directly or through others"
                )
    return ordered
