"""The nightly evaluation's settings and choice of checkpoint (`finetune-eval` with
`nightly=True`, the `finetune-eval/nightly` deployment).

Where the task data lives, and which tasks, is set once on the Prefect server, as the Variable
`roberta_nightly_eval`, and read when the run starts (so a change applies to the next run,
and "not configured" can be said truthfully; a `{{ prefect.variables.x }}` template in
prefect.yaml would be fixed at `prefect deploy` time, and silently empty when missing):

    prefect variable set roberta_nightly_eval '{"data_dir": "/data/glue", "tasks": "rte,sst2"}'

A `data_dir` parameter given to the run wins over the Variable.

A checkpoint counts as evaluated when every configured task has a result for it on exactly
the configured data (the fingerprint of the task files): results on other data, such as the
pipeline's generated stand-ins, do not count.
"""
from __future__ import annotations

import json
from pathlib import Path

VARIABLE = "roberta_nightly_eval"
EXAMPLE = {"data_dir": "/path/to/glue", "tasks": "rte,sst2"}
DEFAULT_TASKS = "glue"


def set_command(value: dict | None = None) -> str:
    """The command that configures the nightly evaluation (with `value`, or an example)."""
    return (f"prefect variable set {VARIABLE} '{json.dumps(value or EXAMPLE)}' --overwrite")


class NightlyConfigError(ValueError):
    """The nightly evaluation's task data is not configured, or not usable as configured."""


def read_settings(data_dir: str | None, tasks: str | None) -> tuple[str, str, str]:
    """(data dir, tasks, where they came from): the run's parameters when `data_dir` is
    given, else the Prefect Variable. Raises `NightlyConfigError` naming what to set."""
    if data_dir is not None:
        return data_dir, tasks or DEFAULT_TASKS, "the run's data_dir parameter"
    from prefect.variables import Variable

    value = Variable.get(VARIABLE, default=None)
    if value is None:
        raise NightlyConfigError(
            "the task data for the nightly evaluation is not configured: set the Prefect "
            f"Variable {VARIABLE!r} on the server, e.g. `{set_command()}` (data_dir: the "
            "folder with GLUE's TSV folders, SQuAD/ or RACE/; tasks: which of them)")
    if isinstance(value, str):
        value = {"data_dir": value}
    if not isinstance(value, dict) or not isinstance(value.get("data_dir"), str):
        raise NightlyConfigError(
            f"the Prefect Variable {VARIABLE!r} is {json.dumps(value)}, not an object with a "
            f"data_dir: set it with `{set_command()}`")
    where = f"the Prefect Variable {VARIABLE!r} ({json.dumps(value)})"
    return value["data_dir"], tasks or value.get("tasks") or DEFAULT_TASKS, where


def unusable(problem: str, where: str, data_dir: str, tasks: str) -> NightlyConfigError:
    """The error for configured data that does not hold the configured tasks' files."""
    fix = (f"fix it with `{set_command({'data_dir': data_dir, 'tasks': tasks})}` after "
           "correcting data_dir or tasks" if where.startswith("the Prefect Variable")
           else "pass another data_dir")
    return NightlyConfigError(f"the nightly evaluation's task data, from {where}, is not "
                              f"usable: {problem}. {fix}")


def fresh_checkpoint(checkpoints: list[Path], evaluated: set[str]) -> Path | None:
    """The newest of `checkpoints` (oldest first) not in `evaluated` (resolved paths)."""
    fresh = [d for d in checkpoints if str(Path(d).resolve()) not in evaluated]
    return fresh[-1] if fresh else None


__all__ = ["VARIABLE", "NightlyConfigError", "read_settings", "unusable", "fresh_checkpoint",
           "set_command", "DEFAULT_TASKS"]
