"""`make server` (infra/local_server.sh): a real Prefect server and process worker on a free
loopback port, telemetry off without being asked, and one SIGTERM stops the script and every
process it started (it used to need SIGKILL: bash starts background commands with SIGINT
ignored, and Prefect's worker stops by sending itself SIGINT)."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (setsid changes the session, not the parent)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def wait_for(predicate, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.5)


def test_one_sigterm_stops_server_and_worker_with_telemetry_off(tmp_path):
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_API_URL")}
    env.update(ROBERTA_BIN=str(Path(sys.executable).parent), PREFECT_PORT=str(free_port()),
               PREFECT_HOME=str(tmp_path / "not-yet" / "home"))
    with open(log, "w") as out:
        script = subprocess.Popen(["bash", str(REPO / "infra" / "local_server.sh")], stdout=out,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for(lambda: "started!" in log.read_text() or script.poll() is not None, 600,
                 "worker start")
        assert script.poll() is None, log.read_text()
        started = descendants(script.pid)
        assert len(started) >= 2, started              # at least the server and the worker
        script.send_signal(signal.SIGTERM)             # once
        wait_for(lambda: script.poll() is not None and not alive(started), 180,
                 "stop after one SIGTERM")
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    text = log.read_text()
    assert "killing it" not in text                    # stopped by the signal, not by SIGKILL
    assert "telemetry" not in text.lower(), text
    assert (tmp_path / "not-yet" / "home").is_dir()
