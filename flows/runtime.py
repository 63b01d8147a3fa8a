"""Where work runs: the Prefect task runner for fan-outs, and the Ray instance for training.

Embedded defaults: no configuration means a local process pool (or a local Ray instance);
the same flows attach to a Ray cluster when given its address.
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
    ray       - prefect-ray's RayTaskRunner: a local Ray, or a cluster at `ray_address`.
    """
    workers = workers or default_workers()
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "ray":
        from prefect_ray import RayTaskRunner
        # A local Ray gets the dashboard unless ROBERTA_RAY_DASHBOARD=0 (the tests set it).
        init_kwargs = {} if ray_address else {
            "num_cpus": workers,
            "include_dashboard": os.environ.get("ROBERTA_RAY_DASHBOARD", "1") != "0"}
        return RayTaskRunner(address=ray_address, init_kwargs=init_kwargs)
    raise ValueError(f"unknown task runner {kind!r}: choose one of {', '.join(RUNNERS)}")

