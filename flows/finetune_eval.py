"""The `finetune-eval` flow: one Prefect task per (task, lr, batch, seed), then the results table.

Each finished job is stored as `<root>/results/jobs/<task>/<key>.json`, keyed on the checkpoint
(path, size and mtime of its weights: checkpoints are written once, atomically), the task's
data files (path, size and mtime of each: fixed data is finetuned on again), the task and
every hyperparameter, so a rerun does not repeat it. Failed jobs are not stored: a rerun
retries them, and meanwhile they are rows with their error in the results table. A stored job
that cannot be read is rerun.

Arguments and inputs are checked before any job runs (`check_inputs`): an unknown task, a
missing data directory or data file, a missing checkpoint is an `InputError` (the CLI's exit
2) and writes no row. `data_dir="synthetic"` evaluates on the pipeline's generated stand-in
tasks (SST-2 and SQuAD 1.1 formats) under `<root>/eval-data`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import (create_image_artifact, create_markdown_artifact,
                               create_table_artifact)
from prefect.futures import as_completed

from flows.progress import FlowProgress
from flows.runtime import make_task_runner

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SYNTHETIC_DATA = "synthetic"        # as `roberta pipeline --data-dir synthetic`
SYNTHETIC_TASKS = "sst2,squad1"     # the tasks the pipeline's synthetic data has


class InputError(ValueError):
    """A bad argument or a missing input, found before any job runs."""


def checkpoint_dirs(root: str | os.PathLike) -> list[Path]:
    """Complete pretrain checkpoints of every run under `<root>/pretrain`, oldest first."""
    from training.checkpoint import list_checkpoints

    base = Path(root) / "pretrain"
    runs = [d for d in base.iterdir() if d.is_dir()] if base.is_dir() else []
    found = [ck for run in runs for _, ck in list_checkpoints(run)]
    return sorted(found, key=lambda d: ((d / "model.safetensors").stat().st_mtime_ns, str(d)))


def latest_checkpoint(root: str | os.PathLike) -> Path:
    found = checkpoint_dirs(root)
    if not found:
        raise FileNotFoundError(f"no pretrain checkpoint under {Path(root) / 'pretrain'}: run "
                                "pretrain first, or pass --checkpoint DIR (any HF RoBERTa dir)")
    return found[-1]


def model_name(model_dir: Path) -> str:
    """`<run>` for `<root>/pretrain/<run>/.../step-N`, else the directory's own name."""
    parts = model_dir.resolve().parts
    if "pretrain" in parts and parts.index("pretrain") + 1 < len(parts):
        return parts[parts.index("pretrain") + 1]
    return model_dir.name


def checkpoint_fingerprint(model_dir: str | os.PathLike) -> str:
    d = Path(model_dir).resolve()
    for name in WEIGHT_FILES:
        if (d / name).exists():
            st = (d / name).stat()
            return f"{d}:{st.st_size}:{st.st_mtime_ns}"
    raise FileNotFoundError(f"no model weights ({' or '.join(WEIGHT_FILES)}) in {d}")


def data_fingerprint(task: str, data_dir: str | os.PathLike) -> str:
    """A hash of the path, size and mtime of every data file of `task` (RACE splits are
    folders: each file in them). A missing file is part of the hash, not an error: the job
    reports it."""
    from evaluation.readers import task_files

    lines = []
    for path in task_files(task, Path(data_dir).resolve()).values():
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            try:
                st = f.stat()
                lines.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
            except FileNotFoundError:
                lines.append(f"{f}:missing")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def job_key(fingerprint: str, data: str, job: dict) -> str:
    blob = json.dumps({"checkpoint": fingerprint, "data": data, **job}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def read_cached(path: Path) -> dict | None:
    """The stored result at `path`, or None when there is none or it is unusable (a truncated
    or foreign file): the job is then rerun, never the whole evaluation stopped."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        get_run_logger().warning("ignoring unreadable cached job %s (%s): rerunning it", path, e)
        return None
    if not isinstance(result, dict) or result.get("error") or not result.get("best"):
        get_run_logger().warning("ignoring cached job %s: not a finished result; rerunning it",
                                 path)
        return None
    return result


def resolve_data_dir(root: str | os.PathLike, data_dir: str | os.PathLike) -> Path:
    """`data_dir`; for `synthetic`, `<root>/eval-data` with the pipeline's stand-in tasks,
    generated by the pipeline's own writer when missing (so both share data and job cache)."""
    if str(data_dir) != SYNTHETIC_DATA:
        return Path(data_dir)
    from evaluation.synthetic import write_standin_tasks

    return write_standin_tasks(Path(root) / "eval-data", tuple(SYNTHETIC_TASKS.split(",")))


def default_tasks(data_dir: str | os.PathLike) -> str:
    return SYNTHETIC_TASKS if str(data_dir) == SYNTHETIC_DATA else "mrpc"


def _check_sweep(lrs, batch_sizes, epochs, limit, workers) -> None:
    bad = []
    if lrs is not None and any(not (lr > 0 and lr < float("inf")) for lr in lrs):
        bad.append(f"--lrs must be positive numbers, got {','.join(map(str, lrs))}")
    for name, values in (("--batch-sizes", batch_sizes), ("--epochs", epochs),
                         ("--limit", limit), ("--workers", workers)):
        values = [values] if isinstance(values, int) else values
        if values is not None and any(v < 1 for v in values):
            bad.append(f"{name} must be at least 1, got {','.join(map(str, values))}")
    if bad:
        raise InputError("; ".join(bad))


def missing_task_files(specs, data_dir: Path) -> list[tuple[str, Path]]:
    """(task, file) for every data file of `specs` that is not under `data_dir`."""
    from evaluation.readers import task_files

    return [(spec.name, path) for spec in specs
            for path in task_files(spec, data_dir).values() if not path.exists()]


def check_inputs(root: str | os.PathLike, data_dir: str | os.PathLike, tasks: str | None = None,
                 checkpoint: str | None = None, nightly: bool = False, lrs=None,
                 batch_sizes=None, epochs: int | None = None, limit: int | None = None,
                 workers: int | None = None) -> tuple[Path, list, Path | None]:
    """Check every argument and input of a run before anything slow starts, in the order a
    user fixes them: tasks, sweep, checkpoint, data. Returns (data dir, task specs,
    checkpoint dir; None in nightly mode, which picks it later). Raises `InputError`
    (or FileNotFoundError for the checkpoint) with a message saying what to do; generates
    the synthetic data for `data_dir="synthetic"`."""
    from evaluation.tasks import parse_tasks
    from training.loop import uri_root_problem

    problem = uri_root_problem(root, "finetune-eval")
    if problem:
        raise InputError(problem)
    tasks = tasks or default_tasks(data_dir)
    try:
        specs = parse_tasks(tasks)
    except KeyError as exc:
        raise InputError(f"--tasks: {exc.args[0]} (or glue / all)") from None
    if not specs:
        raise InputError(f"--tasks {tasks!r} names no task")
    _check_sweep(lrs, batch_sizes, epochs, limit, workers)
    model_dir = None
    if not nightly:
        model_dir = Path(checkpoint) if checkpoint else latest_checkpoint(root)
        checkpoint_fingerprint(model_dir)
    synthetic = str(data_dir) == SYNTHETIC_DATA
    if not synthetic and not Path(data_dir).is_dir():
        raise InputError(
            f"--data-dir {data_dir}: no such directory. Pass the directory holding the task "
            "data (GLUE TSV dirs such as MRPC/train.tsv, SQuAD/*.json, RACE/), or "
            f"--data-dir {SYNTHETIC_DATA} for generated SST-2 and SQuAD 1.1 stand-ins")
    data = resolve_data_dir(root, data_dir)
    missing = missing_task_files(specs, data)
    if missing:
        listed = ", ".join(f"{p.relative_to(data)} ({t})" for t, p in missing)
        hint = (f"--data-dir {SYNTHETIC_DATA} generates only {SYNTHETIC_TASKS}: pick those "
                "--tasks, or pass a real --data-dir" if synthetic else
                "Put the task's files there in the layout they ship in (GLUE TSV dirs, "
                "SQuAD/train-v2.0.json, RACE/{train,dev}/), or leave the task out of --tasks")
        raise InputError(f"task data missing under {data}: {listed}. {hint}")
    return data, specs, model_dir


@task(name="finetune", task_run_name="{job[task]}-lr{job[lr]}-bs{job[batch_size]}-seed{job[seed]}")
def finetune_job(job: dict, model_dir: str, data_dir: str, root: str, device: str) -> dict:
    from evaluation.finetune import run_job

    jobs_dir = Path(root) / "results" / "jobs" / job["task"]
    key = job_key(checkpoint_fingerprint(model_dir), data_fingerprint(job["task"], data_dir), job)
    done = jobs_dir / f"{key}.json"
    cached = read_cached(done)
    if cached is not None:
        return cached
    result = run_job(model_dir, job["task"], data_dir, device=device,
                     **{k: v for k, v in job.items() if k != "task"})
    if not result.get("error"):
        jobs_dir.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(result, default=str))
        os.replace(tmp, done)
    return result


@flow(name="finetune-eval-jobs")
def run_jobs(jobs: list[dict], model_dir: str, data_dir: str, root: str, device: str,
             gpus_per_job: float) -> list[dict]:
    progress = FlowProgress(len(jobs), "finetuning jobs finished")
    if gpus_per_job:
        from prefect_ray.context import remote_options

        with remote_options(num_gpus=gpus_per_job):
            futures = finetune_job.map(jobs, unmapped(model_dir), unmapped(data_dir),
                                       unmapped(root), unmapped(device))
    else:
        futures = finetune_job.map(jobs, unmapped(model_dir), unmapped(data_dir),
                                   unmapped(root), unmapped(device))
    results = []
    for future in as_completed(futures):
        results.append(future.result())  # run_job never raises: failures are results
        progress.advance()
    return results


@flow(name="finetune-eval")
def finetune_eval(root: str = "runs/default", data_dir: str = "data/glue",
                  tasks: str | None = None, checkpoint: str | None = None, nightly: bool = False,
                  seeds: list[int] | None = None, lrs: list[float] | None = None,
                  batch_sizes: list[int] | None = None, epochs: int | None = None,
                  limit: int | None = None, device: str | None = None,
                  runner: str = "threads", workers: int | None = 1,
                  ray_address: str | None = None) -> dict:
    """Finetune and evaluate a checkpoint on GLUE, SQuAD and RACE tasks, as the paper did.

    Args:
        root: the run root; results go to `<root>/results/`.
        data_dir: where the task data lives (GLUE TSV dirs, SQuAD/, RACE/), or `synthetic`
            for the pipeline's generated stand-ins under `<root>/eval-data`.
        tasks: comma-separated task names, or `glue` / `all` (default: `mrpc`, or
            `sst2,squad1` with synthetic data).
        checkpoint: a pretrain checkpoint or any HF RoBERTa directory (default: the newest
            pretrain checkpoint under the run root).
        nightly: evaluate the newest checkpoint that has no results yet; do nothing if none.
        seeds, lrs, batch_sizes, epochs: override the paper's Table 10 sweep.
        limit: use at most this many training examples per task (smoke runs).
        device: cpu or cuda (default: cuda when available).
        runner: `threads` (local: jobs share the machine) or `ray` (one GPU per job).
        workers: concurrent jobs for the local runner.
        ray_address: Ray cluster address for `runner="ray"`.
    """
    from evaluation.aggregate import aggregate
    from evaluation.results import (append_results, evaluated_checkpoints, paths, read_results,
                                    to_markdown)
    from evaluation.tasks import hyperparameter_grid

    logger = get_run_logger()
    data, specs, model_dir = check_inputs(root, data_dir, tasks, checkpoint, nightly, lrs,
                                          batch_sizes, epochs, limit, workers)
    synthetic = str(data_dir) == SYNTHETIC_DATA
    if nightly:
        seen = evaluated_checkpoints(root)
        fresh = [d for d in checkpoint_dirs(root) if str(d) not in seen]
        if not fresh:
            logger.info("nightly: every checkpoint under %s already has results", root)
            return {"evaluated": None, "rows": []}
        model_dir = fresh[-1]
        checkpoint_fingerprint(model_dir)  # fail now, naming the directory, not in every job
    jobs = [dict(job, **({"epochs": epochs} if epochs else {}), limit=limit)
            for spec in specs for job in hyperparameter_grid(spec, lrs, batch_sizes, seeds)]
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("finetune-eval: %d jobs over %s on %s", len(jobs), [s.name for s in specs],
                model_dir)
    gpus = 1 if (runner == "ray" and device == "cuda") else 0
    task_runner = make_task_runner(runner, workers, ray_address)
    results = run_jobs.with_options(task_runner=task_runner)(
        jobs, str(model_dir), str(data), root, device, gpus)
    rows = aggregate(results)
    before = read_results(root).num_rows
    table = append_results(root, rows, model=model_name(Path(model_dir)),
                           checkpoint=str(model_dir))
    create_table_artifact(key="finetune-eval-results", table=[
        {k: r.get(k) for k in ("task", "metric", "value", "n_seeds", "lr", "batch_size",
                               "paper_base", "paper_large", "error")} for r in rows],
        description=f"{model_dir}: median over seeds of the best dev epoch")
    create_markdown_artifact(key="finetune-eval-report", markdown=(
        to_markdown(table) + f"\n\nChart: `{paths(root)['png']}`"))
    chart = Path(paths(root)["png"])
    if chart.exists() and chart.stat().st_size < 2_000_000:
        # The UI shows image artifacts by URL; a data URL keeps the run self-contained.
        create_image_artifact(image_url="data:image/png;base64," +
                              base64.b64encode(chart.read_bytes()).decode(),
                              key="finetune-eval-chart",
                              description="ours vs the paper's RoBERTa-base and -large")
    return {"evaluated": str(model_dir), "rows": rows,
            "failed_jobs": sum(1 for r in results if r.get("error")),
            "appended": table.num_rows - before, "synthetic_tasks": synthetic,
            "data_dir": str(data)}
