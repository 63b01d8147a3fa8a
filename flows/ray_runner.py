"""prefect-ray's RayTaskRunner, with two changes:

- each task run says in its log which Ray node ran it: on a cluster, the Prefect UI then
  shows where a slow or failed input ran;
- Ray workers on this machine (a local Ray, or a cluster on 127.0.0.1) report to this
  process's Prefect API. Without a Prefect server (ephemeral mode) each Ray worker would
  otherwise start an API server of its own, which takes tens of seconds per worker and keeps
  the task runs' states and logs wherever that worker's PREFECT_HOME is. Workers on other
  machines cannot reach an ephemeral API on 127.0.0.1: a cluster needs a Prefect server that
  every node reaches (PREFECT_API_URL), as the README says.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

from prefect_ray import RayTaskRunner

from training.ray_local import is_loopback_address


def log_ray_node(task, task_run, state) -> None:
    """A task's `on_running` hook: one line in its log naming the Ray node it runs on."""
    import ray
    from prefect.logging.loggers import task_run_logger

    node = ray.get_runtime_context().get_node_id()
    task_run_logger(task_run, task).info("running on Ray node %s (%s)", node,
                                         ray.util.get_node_ip_address())


@contextmanager
def this_api_for_workers():
    """While submitting: the settings a task carries to its Ray worker name this process's
    ephemeral Prefect API (already running: the flow run uses it)."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    context = FlowRunContext.get()
    if PREFECT_API_URL.value() or context is None or context.client is None:
        yield                       # a Prefect server is configured: workers use it too
        return
    with temporary_settings({PREFECT_API_URL: str(context.client.api_url)}):
        yield


class NodeLoggingRayTaskRunner(RayTaskRunner):
    """RayTaskRunner whose task runs log their Ray node (`log_ray_node`) and, on this
    machine, report to this process's Prefect API."""

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        task = task.with_options(on_running=[*task.on_running_hooks, log_ray_node])
        same_machine = not self.address or is_loopback_address(self.address)
        with this_api_for_workers() if same_machine else nullcontext():
            return super().submit(task, parameters, wait_for, dependencies)


__all__ = ["NodeLoggingRayTaskRunner", "log_ray_node", "this_api_for_workers"]
