"""The stages on a real two-node Ray cluster on this machine (`ray.cluster_utils.Cluster`, as
Ray tests several nodes; both nodes on 127.0.0.1, one CPU each), driven as a user drives a
cluster: `roberta <stage> ... --address <cluster>` (the CLI's `main`, in this process).

- build-corpus and finetune-eval (`--runner ray`) run their tasks on both nodes: each task run
  logs its Ray node (flows/ray_runner.py) and the test reads those lines back from Prefect;
- `pretrain --workers 2` puts one worker on each node; the second node is killed mid-run, a
  node is added back, and the run restarts from its last checkpoint and finishes: every
  update once, the updates the first attempt made past that checkpoint recomputed to the same
  losses (same data, masks and weights), the same final step and data position, and nothing
  in the run root half-written.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from corpus.sample_crawl import generate_crawl
from tests._pretrain_shards import sample_shards_root
from tests.tensorboard_events import scalar_curves
from training import checkpoint as ckpt
from training import run_checkpoints
from training.metrics_log import read_metrics
from training.ray_launcher import WORKERS_FILE

pytestmark = pytest.mark.slow

NODE_LINE = "running on Ray node "


@pytest.fixture(scope="module")
def cluster():
    """Head and a second node, 1 CPU each, on 127.0.0.1; Ray's files in a short private temp
    dir (socket paths must fit 107 bytes; the default /tmp/ray is shared with other runs)."""
    import ray
    import ray._private.ray_constants as ray_constants
    from ray.cluster_utils import Cluster

    if ray.is_initialized():    # the drivers here attach to the cluster, not to a local Ray
        ray.shutdown()
    temp = tempfile.mkdtemp(prefix="r15-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", temp)
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")       # loopback, see ray_local.py
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        mp.setenv("PREFECT_LOGGING_LEVEL", "INFO")     # the Ray workers' task-run node lines
        c = Cluster(initialize_head=True, head_node_args=dict(
            node_ip_address="127.0.0.1", num_cpus=1, include_dashboard=False))
        c.second = c.add_node(node_ip_address="127.0.0.1", num_cpus=1)
        c.wait_for_nodes(timeout=120)
        try:
            yield c
        finally:
            c.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def roberta(*args: str) -> int:
    """The `roberta` CLI in this process (its exit code)."""
    from flows.cli import main

    return main(list(args))


def node_ids(cluster) -> set[str]:
    return {n.node_id for n in cluster.list_all_nodes()}


def task_nodes(task_prefix: str, since: float, expected: int, limit_s: float = 120) -> dict:
    """{task run name: Ray node id} from the node lines in Prefect's logs of task runs named
    `task_prefix...` that started after `since` (logs arrive in batches: poll)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp

    deadline = time.time() + limit_s
    while True:
        with get_client(sync_client=True) as client:
            logs = [log for log in client.read_logs(log_filter=LogFilter(
                timestamp=LogFilterTimestamp(after_=_utc(since))))
                if log.message.startswith(NODE_LINE) and log.task_run_id]
            names = {log.task_run_id: client.read_task_run(log.task_run_id).name for log in logs}
        found = {names[log.task_run_id]: log.message[len(NODE_LINE):].split()[0]
                 for log in logs if names[log.task_run_id].startswith(task_prefix)}
        if len(found) >= expected or time.time() > deadline:
            return found
        time.sleep(1)


def _utc(t: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, tz=timezone.utc)


def test_build_corpus_runs_its_tasks_on_both_nodes(cluster, tmp_path):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    for i in range(2):                  # two inputs, one CPU per node: one task on each
        generate_crawl(crawl / f"part-{i}.warc.gz", n_pages=30, seed=i)
    since = time.time()
    assert roberta("build-corpus", "--root", str(tmp_path / "run"), str(crawl),
                   "--runner", "ray", "--address", cluster.address) == 0
    nodes = task_nodes("process-warc", since, expected=2)
    assert len(nodes) == 2 and set(nodes.values()) == node_ids(cluster), nodes
    assert len(list((tmp_path / "run" / "corpus" / "manifests").glob("*.json"))) == 2
    assert list((tmp_path / "run" / "corpus" / "documents").glob("part-*.parquet"))


def test_finetune_eval_runs_its_jobs_on_both_nodes(cluster, tmp_path):
    from evaluation.synthetic import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")
    since = time.time()
    assert roberta("finetune-eval", "--root", str(tmp_path / "run"), "--checkpoint",
                   str(checkpoint), "--data-dir", "synthetic", "--tasks", "sst2",
                   "--seeds", "1,2", "--lrs", "1e-3", "--batch-sizes", "8", "--epochs", "1",
                   "--limit", "32", "--runner", "ray", "--address", cluster.address) == 0
    nodes = task_nodes("sst2-", since, expected=2)
    assert len(nodes) == 2 and set(nodes.values()) == node_ids(cluster), nodes
    jobs = list((tmp_path / "run" / "results" / "jobs").glob("*/*.json"))
    assert len(jobs) == 2


def worker_starts(run_dir: Path) -> list[dict]:
    p = run_dir / WORKERS_FILE
    return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []


def registered_checkpoint_step(run_dir: Path) -> int:
    """The newest checkpoint Ray Train has recorded (files on disk are not enough: a
    checkpoint counts once the controller has the report)."""
    snapshot = run_dir / run_checkpoints.RAY_TRAIN_SNAPSHOT
    text = snapshot.read_text() if snapshot.is_file() else ""
    steps = [int(part[:8]) for part in text.split("checkpoints/step-")[1:] if part[:8].isdigit()]
    return max(steps, default=0)


def wait_for(condition, what: str, run: threading.Thread, limit_s: float = 600):
    deadline = time.time() + limit_s
    while not (value := condition()):
        assert run.is_alive(), f"pretrain ended before {what}"
        assert time.time() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.2)
    return value


# pytest-timeout above the waits below: a slow machine fails on their clear messages
@pytest.mark.timeout(1500)
def test_pretrain_one_worker_per_node_survives_losing_a_node(cluster, tmp_path_factory):
    root = sample_shards_root(tmp_path_factory.getbasetemp())
    run_dir = root / "pretrain" / "nodeloss"
    steps = 24      # room to kill the node mid-run however far the controller lags behind
    exit_code: list[int] = []
    run = threading.Thread(target=lambda: exit_code.append(roberta(
        "pretrain", "--root", str(root), "--run", "nodeloss", "--workers", "2",
        "--address", cluster.address, "--steps", str(steps), "--batch-size", "16",
        "--micro-batch-size", "8", "--checkpoint-every", "3", "--max-failures", "3")))
    run.start()

    # Kill the second node once Ray Train holds a checkpoint and the run is two updates past
    # it, so that the restart recomputes updates the first attempt made; then add a node.
    def past_checkpoint() -> list[dict]:
        done, metrics = registered_checkpoint_step(run_dir), read_metrics(run_dir)
        return metrics if done and metrics and metrics[-1]["step"] >= done + 2 else []
    before = wait_for(past_checkpoint, "checkpoint and two more updates", run)
    assert before[-1]["step"] < steps, "the run ended before the node was killed"
    first = worker_starts(run_dir)
    cluster.remove_node(cluster.second, allow_graceful=False)
    third = cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1)
    run.join(timeout=900)
    assert exit_code == [0]

    # One worker per node, before and after the loss; the restart from the last checkpoint.
    head = cluster.head_node.node_id
    assert sorted(s["node_id"] for s in first) == sorted([head, cluster.second.node_id])
    restarted = worker_starts(run_dir)[len(first):]
    assert sorted(s["node_id"] for s in restarted[-2:]) == sorted([head, third.node_id])
    assert all("checkpoints/step-" in (s["resumed_from"] or "") for s in restarted[-2:])

    # One trajectory: every update once; those recomputed after the restart equal the first
    # attempt's; the final step and each rank's data position as in an uninterrupted run.
    metrics = read_metrics(run_dir)
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    for m in before:
        assert metrics[m["step"] - 1]["loss"] == m["loss"], m["step"]
    final = run_checkpoints.latest_checkpoint(run_dir)
    assert final.name == run_checkpoints.step_dir_name(steps)
    for rank in (0, 1):
        reader = ckpt.read_checkpoint(final, rank=rank, world_size=2)["reader"]
        assert (reader["rank"], reader["offset"]) == (rank, steps * 8)
    curve = scalar_curves(run_dir)["train/loss"]
    assert [s for s, _ in curve] == list(range(1, steps + 1))
    assert_nothing_half_written(run_dir)     # the shards root is shared with other tests' runs


def assert_nothing_half_written(run_dir: Path) -> None:
    """No temporary left behind in the run, every checkpoint directory complete and verified,
    every JSON line whole."""
    leftovers = [p for p in run_dir.rglob("*") if ".tmp" in p.name or p.name.startswith("tmp")]
    assert not leftovers, leftovers
    for _, step_dir in run_checkpoints.step_dirs(run_dir):
        run_checkpoints.verify_checkpoint(step_dir)
    for name in ("metrics.jsonl", WORKERS_FILE):
        for line in (run_dir / name).read_text().splitlines():
            json.loads(line)
