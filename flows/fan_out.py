"""The per-input fan-out build-corpus and import-corpus share: one Prefect task per input
file, mapped over every input in a subflow on the chosen task runner. Each task skips a
finished input, else fetches it, processes it and drops the download; an input that fails
becomes a row `{input, error}`, never a failed flow.

A flow writes its per-input task as a thin wrapper of `process_input_file`, handing it the
corpus/ functions that say whether the input is done and process it, and runs the fan-out
with `fan_out`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, unmapped

from runroot import layout


class AllInputsFailedError(RuntimeError):
    """The run produced nothing: every input failed."""


def process_input_file(root: str, keep_downloads: bool, *, finished: Callable[[], dict | None],
                       fetch: Callable[[Path], Path], process: Callable[[Path], dict]) -> dict:
    """One input: the manifest `finished()` returns for a finished input (a rerun fetches
    nothing), else `process(fetch(downloads dir))`, whose downloaded copy is then removed
    unless kept."""
    from corpus.inputs import remove_download

    done = finished()
    if done is not None:
        return done
    downloads = layout.downloads_dir(root)
    local = fetch(downloads)
    manifest = process(local)
    if not keep_downloads:
        remove_download(local, downloads)
    return manifest


def gather_manifests(futures, locations: list[str], logger) -> tuple[list[dict], list[dict]]:
    """Results of a per-input fan-out as they finish, with a Prefect progress artifact: a
    failed input becomes a row `{input, error}`, never a failed flow."""
    from prefect.futures import as_completed

    from flows.progress import FlowProgress

    progress = FlowProgress(len(locations), "input files processed")
    by_future = {f.task_run_id: loc for f, loc in zip(futures, locations)}
    manifests, failed = [], []
    for future in as_completed(futures):
        location = by_future[future.task_run_id]
        try:
            manifests.append(future.result())
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop the others
            logger.error("input %s failed: %s", location, exc)
            failed.append({"input": location, "error": f"{type(exc).__name__}: {exc}"})
        progress.advance()
    manifests.sort(key=lambda m: m["input_id"])
    return manifests, failed


@flow(name="per-input")
def map_inputs(input_task, locations: list[str], shared: dict) -> tuple[list[dict], list[dict]]:
    """`input_task(location, **shared)` for every location; (manifests, failed rows)."""
    futures = input_task.map(locations, **{k: unmapped(v) for k, v in shared.items()})
    return gather_manifests(futures, locations, get_run_logger())


def fan_out(flow_name: str, input_task, locations: list[str], task_runner, done: str, /,
            **shared) -> tuple[list[dict], list[dict]]:
    """Run `input_task(location, **shared)` over `locations` in the subflow `flow_name` on
    `task_runner`: (manifests sorted by input id, failed rows). Raises AllInputsFailedError,
    naming each input's error, when no input could be `done` (processed, imported)."""
    manifests, failed = map_inputs.with_options(name=flow_name, task_runner=task_runner)(
        input_task, locations, shared)
    if not manifests:
        raise AllInputsFailedError(f"no input could be {done}: " + "; ".join(
            f"{f['input']}: {f['error']}" for f in failed))
    return manifests, failed


def total_counts(manifests: list[dict]) -> dict:
    """What the inputs' manifests add up to: outcomes per record, records read, damaged
    records; and one row per input (`per_input`), with the problem of an input that gave no
    usable record (`unusable_inputs` lists those)."""
    outcomes: dict[str, int] = {}
    for m in manifests:
        for outcome, n in m["counts"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    per_input = [input_row(m) for m in manifests]
    return {"inputs": len(manifests), "records": sum(m["records_read"] for m in manifests),
            "errors": [e for m in manifests for e in m.get("errors", [])], "outcomes": outcomes,
            "per_input": per_input,
            "unusable_inputs": [r for r in per_input if r["problem"]]}


def input_row(manifest: dict) -> dict:
    """What the console says about one input: its records and documents, and the problem,
    warning or note its manifest carries."""
    records = manifest["records_read"]
    return {"input": manifest["input"], "records": records, "documents": manifest["documents"],
            "pages": records - manifest["counts"].get("not_response", 0),
            "seconds": manifest.get("seconds"),
            "done_earlier": bool(manifest.get("skipped")),
            **{k: manifest.get(k) for k in ("problem", "warning", "note")}}
