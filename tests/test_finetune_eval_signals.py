"""Stopping a real `roberta finetune-eval`, on a terminal: its progress shows this run's jobs
and the running job's updates; Ctrl-C (SIGINT) or SIGTERM in the middle of a job stops it at its
next update and the command exits within seconds (it used to wait for every running job), the
finished jobs stay cached, and the same command continues with the rest."""
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from evaluation.synthetic import write_synthetic_sst2
from tests.fixtures_eval import pretrain_style_checkpoint

pytestmark = pytest.mark.slow
# A signal must end the command this soon: the goal is 10 s (the time taken is printed), the
# margin is for a loaded CI box. The proof that the job was stopped, not waited for, is that it
# left no result, whatever the time: a finished job is cached.
STOP_WITHIN_S = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """The command on a pseudo-terminal (so rich draws its live progress), its output kept."""

    def __init__(self, args: list[str]):
        master, slave = pty.openpty()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120", "LINES": "40"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args], env=env, stdin=slave, stdout=slave,
            stderr=slave, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        os.close(slave)
        self.master, self.text = master, ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:           # the command ended
                return
            if not chunk:
                return
            self.text += ANSI.sub("", chunk.decode(errors="replace"))

    def wait_for(self, pattern: str, limit_s: float = 900) -> re.Match:
        """Poll the output until `pattern` shows (the command still running)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            assert self.proc.poll() is None, self.text[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not shown in {limit_s} s:\n{self.text[-3000:]}")

    def stop(self, sig: int) -> float:
        """Send `sig`; the seconds until the command ended."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=300)
        took = time.monotonic() - t0
        print(f"{signal.Signals(sig).name}: the command ended {took:.1f} s later")
        time.sleep(0.5)               # the last output
        os.close(self.master)
        return took


def job_running(seed: int) -> str:
    """The running job's own bar, past its first updates (of 12 epochs x 38 + 12 scorings)."""
    return rf"sst2 0\.001 b8 s{seed}\s.*?\s([1-9]\d+)/468\b"


def test_a_signal_stops_the_running_job_and_a_rerun_continues(tmp_path):
    root, data = tmp_path / "run", tmp_path / "data"
    pretrain_style_checkpoint(root, "demo", 20)
    write_synthetic_sst2(data, n_train=300, n_dev=100, seed=0)
    args = ["finetune-eval", "--root", str(root), "--data-dir", str(data), "--tasks", "sst2",
            "--seeds", "1,2,3", "--lrs", "1e-3", "--batch-sizes", "8", "--epochs", "12"]
    jobs_dir = root / "results" / "jobs" / "sst2"

    first = Terminal(args)
    first.wait_for(r"finetuning jobs\s.*?\s0/3\b")             # this run's jobs
    first.wait_for(job_running(2))                               # job 1 done, job 2 training
    [job1] = sorted(jobs_dir.glob("*.json"))
    took = first.stop(signal.SIGINT)                             # Ctrl-C
    assert first.proc.returncode == 130, first.text[-3000:]
    assert took < STOP_WITHIN_S, (took, first.text[-3000:])
    assert sorted(jobs_dir.glob("*.json")) == [job1]             # job 2 stopped, not finished
    stamp = job1.stat().st_mtime_ns

    second = Terminal(args)                                      # continues: job 2, then 3
    second.wait_for(r"finetuning jobs\s.*?\s1/3\b")              # job 1 from the cache
    second.wait_for(job_running(3))
    took = second.stop(signal.SIGTERM)
    assert second.proc.returncode in (130, -signal.SIGTERM), second.text[-3000:]
    assert took < STOP_WITHIN_S, (took, second.text[-3000:])
    done = sorted(jobs_dir.glob("*.json"))
    assert len(done) == 2 and job1 in done                       # job 2 ran, job 3 stopped
    assert job1.stat().st_mtime_ns == stamp                      # the finished job was not rerun
    assert not (root / "results" / "results.parquet").exists()   # no partial result was written
    assert "Traceback" not in first.text + second.text
