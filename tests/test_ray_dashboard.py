"""Watching a run on the Ray the project starts, as a user does: `roberta pretrain --workers 2`
(a subprocess, with its own HOME so Ray writes its token there), then

- the dashboard's Train API, with the token, lists the run with its 2 workers (and refuses a
  request without the token);
- the Prometheus endpoint the README names serves the loss and tokens/s under the README's
  names;
- every socket that Ray (and the rest of the command) listens on is on 127.0.0.1, except the
  one the README names: torch.distributed's rendezvous store on the rank-0 worker.

The run is long on purpose (100,000 updates): it is stopped with Ctrl-C once everything has
been seen, so no check depends on how fast this machine trains.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests._pretrain_shards import sample_shards_root
from tests.conftest import REPO
from tests.listening_sockets import free_port, is_loopback, listeners, process_tree

pytestmark = pytest.mark.slow

RUN = "watched"
SERIES = ("ray_roberta_pretrain_loss", "ray_roberta_pretrain_tokens_per_s")


def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:          # not listening yet
        return 0, str(exc)


def poll(check, what: str, proc: subprocess.Popen, limit_s: float = 600):
    deadline = time.time() + limit_s
    while not (value := check()):
        assert proc.poll() is None, f"pretrain exited ({proc.returncode}) before {what}"
        assert time.time() < deadline, f"no {what} within {limit_s} s"
        time.sleep(1)
    return value


@pytest.fixture
def watched_run(tmp_path_factory, tmp_path):
    """`roberta pretrain --workers 2` on a Ray it starts, with the dashboard on; stopped (and
    every process it started gone) after the test."""
    root = sample_shards_root(tmp_path_factory.getbasetemp())
    ports = {"dashboard": free_port(), "metrics": free_port()}
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    ray_temp = tempfile.mkdtemp(prefix="r15d-")         # short: Ray's socket paths
    env.update(HOME=str(tmp_path / "home"), RAY_TMPDIR=ray_temp,
               ROBERTA_RAY_DASHBOARD="1", ROBERTA_RAY_DASHBOARD_PORT=str(ports["dashboard"]),
               ROBERTA_RAY_METRICS_PORT=str(ports["metrics"]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "pretrain", "--root", str(root), "--run", RUN,
         "--workers", "2", "--steps", "100000", "--batch-size", "16", "--micro-batch-size", "8"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()
    yield proc, ports, Path(env["HOME"]), seen
    seen.update(process_tree(proc.pid))
    proc.send_signal(signal.SIGINT)          # Ctrl-C: the run stops, its Ray shuts down
    try:
        proc.communicate(timeout=180)
    finally:
        for pid in seen:                     # anything the Ctrl-C left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(ray_temp, ignore_errors=True)


@pytest.mark.timeout(1500)        # above the polls' limits: their messages say what was missing
def test_the_run_is_watchable_and_on_loopback(watched_run):
    proc, ports, home, seen = watched_run
    token_file = home / ".ray" / "auth_token"
    token = poll(lambda: token_file.is_file() and token_file.read_text().strip(),
                 "Ray token", proc)
    api = f"http://127.0.0.1:{ports['dashboard']}/api/train/v2/runs/v1"

    def running_with_two_workers():
        status, body = get(api, token)
        runs = json.loads(body)["train_runs"] if status == 200 else []
        return next((r for r in runs if r["name"] == RUN and r["status"] == "RUNNING"
                     and len(r["attempts"][-1]["workers"]) == 2), None)
    run = poll(running_with_two_workers, "Train run with 2 workers", proc)
    assert {w["world_rank"] for w in run["attempts"][-1]["workers"]} == {0, 1}
    assert get(api)[0] == 401                    # the dashboard wants the token

    # While Ray and the Train workers are up: who listens where.
    seen.update(process_tree(proc.pid))
    open_to_all = [s for s in listeners(process_tree(proc.pid)) if not is_loopback(s.host)]
    # torch.distributed's TCPStore (rank 0's rendezvous) binds every interface, whatever the
    # address it is given: the one exception, as the README says.
    assert len(open_to_all) <= 1, open_to_all
    assert all(s.command.startswith("ray::RayTrainWorker") for s in open_to_all), open_to_all

    # The metrics the README names, on the endpoint it names (Ray exports every ~10 s).
    readme = (REPO / "README.md").read_text()
    assert all(name in readme for name in SERIES)
    metrics_url = f"http://127.0.0.1:{ports['metrics']}/metrics"

    def served():
        status, body = get(metrics_url)
        lines = [line for line in body.splitlines() if f'run="{RUN}"' in line]
        return status == 200 and all(any(line.startswith(name + "{") for line in lines)
                                     for name in SERIES) and lines
    lines = poll(served, "training series on the metrics endpoint", proc)
    for name in SERIES:
        value = float(next(line for line in lines if line.startswith(name + "{")).split()[-1])
        assert value > 0, (name, value)
