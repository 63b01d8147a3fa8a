"""Ray Train (V2) launcher around the Ray-free loop in `training/loop.py`.

    launch(cfg, num_workers=2)            # local Ray, 2 CPU workers, DDP over gloo
    launch(cfg, num_workers=8, use_gpu=True, address="auto")    # a cluster, NCCL

Each worker runs `training.loop.train` (the same function as the in-process path) with:
  - its device from Ray Train, the process group Ray Train set up (gloo on CPU, NCCL on GPU);
  - `ray.train.get_checkpoint()` as the resume point (after a worker failure Ray restarts the
    group from the last reported checkpoint, `FailureConfig(max_failures)`); a run begun by
    the in-process loop (`--no-ray`) is resumed from its newest checkpoint that verifies;
  - a checkpointer that reports through `ray.train.report(metrics, checkpoint=...)`: every
    rank writes its own files (rank 0 the model/optimizer, each rank its data position and
    RNG) into a local temp dir, and Ray Train merges them into
    `<root>/pretrain/<run>/checkpoints/step-<N>/`, keeping the last `keep_last`;
  - on rank 0, Ray metrics (`ray.util.metrics` gauges/counters, tagged by run; Prometheus
    series `ray_roberta_pretrain_*`) and TensorBoard event files beside `metrics.jsonl`.

The driver turns on Ray Train's state tracking (the dashboard's Train API lists the run, its
workers and attempts); a Ray it starts itself is held to loopback with its dashboard and
metrics endpoint on known ports (training/ray_local.py), and `log` hears where they are.

Storage is `RunConfig(storage_path=<root>/pretrain, name=<run>)`: constructing the trainer
again with the same run name resumes it (Ray Train V2 has no `Trainer.restore`).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from runroot import layout, storage
from training.metrics_log import METRICS_FILE, read_metrics
from training.ray_local import (cluster_address, local_init_kwargs, prepare_driver,
                                track_train_state, where_to_watch)
from training.pretrain_config import PretrainConfig, PretrainConfigError, resolve, run_dir
from training.run_checkpoints import (RAY_TRAIN_SNAPSHOT, refuse_existing_run,
                                      step_dir_name)

WORKERS_FILE = layout.WORKERS_LOG


# --------------------------------------------------------------------------------------------
# inside a worker
# --------------------------------------------------------------------------------------------

class RayCheckpointer:
    """Checkpoints through `ray.train.report`; all ranks call it at the same steps."""

    def __init__(self, run_directory: Path):
        self.run_dir = Path(run_directory)

    def save(self, step: int, write, metrics: dict | None = None) -> Path:
        import ray.train
        from ray.train import Checkpoint

        name = f"{layout.CHECKPOINTS}/{step_dir_name(step)}"
        d = Path(tempfile.mkdtemp(prefix=f"ckpt-{step}-"))
        try:
            write(d)
            report = {k: v for k, v in (metrics or {}).items()
                      if isinstance(v, (int, float, bool)) or v is None}
            ray.train.report(report, checkpoint=Checkpoint.from_directory(str(d)),
                             checkpoint_dir_name=name)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return self.run_dir / name


class RayMetrics:
    """Per-step metrics as Ray metrics (Prometheus, shown by the Ray dashboard); rank 0 only."""

    GAUGES = {"loss": "MLM (+NSP) training loss, nats per masked token",
              "perplexity": "exp(MLM training loss)",
              "valid_loss": "validation MLM loss (fixed masks)",
              "lr": "learning rate", "grad_norm": "gradient norm before clipping",
              "tokens_per_s": "training tokens per second (all workers)",
              "mfu": "model FLOPs utilisation", "step": "optimizer updates done"}

    def __init__(self, run: str):
        from ray.util.metrics import Counter, Gauge

        self.tags = {"run": run}
        self.gauges = {k: Gauge(f"roberta_pretrain_{k}", description=d, tag_keys=("run",))
                       for k, d in self.GAUGES.items()}
        self.tokens = Counter("roberta_pretrain_tokens_total",
                              description="training tokens processed", tag_keys=("run",))
        self.skipped = Counter("roberta_pretrain_skipped_steps_total",
                               description="updates skipped for a non-finite loss",
                               tag_keys=("run",))

    def __call__(self, m: dict) -> None:
        for k, g in self.gauges.items():
            v = m.get(k)
            if isinstance(v, (int, float)) and v is not None:
                g.set(float(v), tags=self.tags)
        if m.get("tokens"):
            self.tokens.inc(float(m["tokens"]), tags=self.tags)
        if m.get("skipped"):
            self.skipped.inc(1.0, tags=self.tags)


class Rank0Metrics:
    """Where rank 0's per-update metrics go besides metrics.jsonl: Ray metrics (Prometheus)
    and TensorBoard event files. Best effort: training never fails over them."""

    def __init__(self, cfg: PretrainConfig):
        from training.tensorboard_log import TensorBoardLog

        self.tensorboard = TensorBoardLog(cfg.run_dir)
        try:
            self.ray_metrics = RayMetrics(cfg.run)
        except Exception:  # noqa: BLE001 - metrics are best effort
            self.ray_metrics = None

    def __call__(self, m: dict) -> None:
        self.tensorboard(m)
        if self.ray_metrics is not None:
            self.ray_metrics(m)

    def close(self) -> None:
        self.tensorboard.close()


def _record_worker_start(rdir: Path, rank: int, world: int, resumed_from: str | None) -> None:
    """One line per worker (re)start: who runs where (host, Ray node, pid), from which
    checkpoint. Shows restarts after failures and where each rank ran; tests use the pids."""
    import ray

    rdir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.time(), "rank": rank, "world_size": world,
                       "pid": os.getpid(), "host": socket.gethostname(),
                       "node_id": ray.get_runtime_context().get_node_id(),
                       "resumed_from": resumed_from})
    with open(rdir / WORKERS_FILE, "a") as f:
        f.write(line + "\n")


def train_loop_per_worker(config: dict) -> dict:
    """The function Ray Train runs on every worker."""
    import ray.train
    import ray.train.torch

    from training.loop import train

    cfg = PretrainConfig.from_dict(config["pretrain"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    rdir = cfg.run_dir
    sinks = Rank0Metrics(cfg) if rank == 0 else None
    run = functools.partial(train, cfg, checkpointer=RayCheckpointer(rdir), on_metrics=sinks,
                            stop_after=config.get("stop_after"),
                            device=ray.train.torch.get_device())
    checkpoint = ray.train.get_checkpoint()
    try:
        if checkpoint is None:
            # Ray Train V2 has no `resume_from_checkpoint`: a run the in-process loop began is
            # resumed by the loop itself, from the newest of its checkpoints that verifies.
            resume = "latest" if config.get("resume_in_process_run") else None
            _record_worker_start(rdir, rank, world, resume)
            return run(resume_from=resume)
        with checkpoint.as_directory() as d:
            _record_worker_start(rdir, rank, world, str(checkpoint.path))
            return run(resume_from=d)
    finally:
        if sinks is not None:
            sinks.close()


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------

def launch(cfg: PretrainConfig, *, num_workers: int = 1, use_gpu: bool = False,
           address: str | None = None, resume: bool = False, max_failures: int = 2,
           cpus_per_worker: float = 1, stop_after: int | None = None,
           ray_init_kwargs: dict | None = None, runtime_env: dict | None = None,
           log=None) -> dict:
    """Run `cfg` on Ray Train; returns the summary of `training.loop.train` (rank 0) plus the
    final checkpoint path and the metrics history.

    address: a Ray cluster (e.g. "127.0.0.1:6379", "ray://head:10001", "auto"); None: the Ray
    instance this process already started, else a new local one on loopback
    (`ray_init_kwargs`, e.g. include_dashboard=False in tests). resume: continue
    `<root>/pretrain/<run>` from its last checkpoint; without it an existing run is an error
    (RunExistsError). log: called with one line saying where a local Ray's dashboard and
    metrics are.
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if num_workers < 1:
        raise PretrainConfigError(f"num_workers must be >= 1, got {num_workers}")
    if not storage.is_uri(cfg.root):       # workers may run in another directory
        cfg = cfg.replace(root=str(Path(cfg.root).resolve()))
    resolve(cfg, num_workers)             # fail here, before any worker starts
    rdir = run_dir(cfg.root, cfg.run)
    refuse_existing_run(rdir, resume)
    if not resume and rdir.exists():
        # leftovers of a run that never reached a checkpoint: start clean
        for path in [rdir / WORKERS_FILE, rdir / METRICS_FILE,
                     *rdir.glob(layout.TENSORBOARD_EVENTS)]:
            path.unlink(missing_ok=True)
    started_ray = _start_ray(address, ray_init_kwargs, runtime_env, log)
    try:
        # A run with no Ray Train state was written by the in-process loop (`--no-ray`).
        in_process_run = resume and not (rdir / RAY_TRAIN_SNAPSHOT).exists()
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"pretrain": cfg.to_dict(), "stop_after": stop_after,
                               "resume_in_process_run": in_process_run},
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cpus_per_worker,
                                                               **({"GPU": 1} if use_gpu else {})}),
            run_config=RunConfig(
                name=cfg.run, storage_path=str(Path(cfg.root) / layout.PRETRAIN),
                checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_last or None),
                failure_config=FailureConfig(max_failures=max_failures)))
        result = trainer.fit()
    finally:
        if started_ray:
            ray.shutdown()
    summary = dict(getattr(result, "return_value", None) or {})
    if result.checkpoint is not None:
        summary["checkpoint"] = result.checkpoint.path
    summary["metrics"] = read_metrics(rdir)
    summary["run_dir"] = str(rdir)
    summary["workers"] = num_workers
    summary["restarts"] = _count_restarts(rdir, num_workers)
    return summary


def _start_ray(address: str | None, ray_init_kwargs: dict | None,
               runtime_env: dict | None, log=None) -> bool:
    """Connect to `address`, or start a local Ray, unless this process already has one;
    returns whether it did (and so must shut it down). Ray Train state tracking is on
    either way."""
    kw = dict(ray_init_kwargs or {})
    # Worker logs stay in the Ray dashboard; the CLI turns their echo off unless -v.
    kw.setdefault("log_to_driver", os.environ.get("ROBERTA_RAY_LOG_TO_DRIVER", "1") != "0")
    if runtime_env:
        kw["runtime_env"] = runtime_env
    import ray

    if ray.is_initialized():
        track_train_state()
        return False
    target = cluster_address(address)
    if target is None:
        # The dashboard is how users watch training; tests turn it off (DEVELOPERS.md).
        kw = local_init_kwargs(**{"configure_logging": False, **kw})
    prepare_driver(address, dashboard=kw.get("include_dashboard", True))
    if target is not None:
        ray.init(address=target, **kw)
        return True
    context = ray.init(**kw)
    if log is not None:
        log(where_to_watch(context))
    return True


def _count_restarts(rdir: Path, num_workers: int) -> int:
    p = rdir / WORKERS_FILE
    if not p.is_file():
        return 0
    starts = sum(1 for line in p.read_text().splitlines() if line.strip())
    return max(0, starts // max(num_workers, 1) - 1)


__all__ = ["launch", "train_loop_per_worker", "RayCheckpointer", "RayMetrics", "Rank0Metrics",
           "WORKERS_FILE"]
