"""Where work runs: the Prefect task runner for fan-outs, and the Ray instance for training.

Embedded defaults: no configuration means a local process pool (or a local Ray instance, held
to loopback like the one pretraining starts: training/ray_local.py); the same flows attach to
a Ray cluster when given its address. On Ray, each task run logs the node it runs on.
"""
from __future__ import annotations

import os

RUNNERS = ("threads", "processes", "ray")


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def make_task_runner(kind: str = "processes", workers: int | None = None,
                     ray_address: str | None = None):
    """A Prefect task runner by name.

    threads   - ThreadPoolTaskRunner: cheap, but CPU-bound extraction holds the GIL.
    processes - ProcessPoolTaskRunner: one core per WARC on this machine.
    ray       - prefect-ray's RayTaskRunner: a local Ray (loopback, `workers` CPUs), or the
                cluster at `ray_address` (or RAY_ADDRESS).
    """
    workers = workers or default_workers()
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "ray":
        return ray_task_runner(workers, ray_address)
    raise ValueError(f"unknown task runner {kind!r}: choose one of {', '.join(RUNNERS)}")


def ray_task_runner(workers: int, ray_address: str | None):
    """prefect-ray's runner on the cluster at `ray_address`, else on a local Ray with the
    settings pretraining uses (loopback, dashboard unless ROBERTA_RAY_DASHBOARD=0); each
    task run logs its Ray node."""
    from flows.ray_runner import NodeLoggingRayTaskRunner
    from training.ray_local import cluster_address, local_init_kwargs, prepare_driver

    address = cluster_address(ray_address)
    init_kwargs = {} if address else local_init_kwargs(num_cpus=workers)
    prepare_driver(address, dashboard=init_kwargs.get("include_dashboard", True))
    return NodeLoggingRayTaskRunner(address=address, init_kwargs=init_kwargs)
