"""A line in the flow-run log every N updates of a pretraining run: step, loss, tokens/s.

Training runs in Ray Train workers (on any node) or in this process, and rank 0 appends one
JSON line per update to `<run>/metrics.jsonl` on the run's filesystem, which every node
shares. So the flow follows that file, as the CLI's progress bar does: it works whatever runs
the loop. The loop (re)writes the file whole when it starts, from its checkpoint's history,
then appends: so the file found before the run (an earlier attempt's) is never read, and after
a restart the follower reads the new file from the start, going on from the last step it
logged (a resumed run from its checkpoint's step).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable


def step_line(m: dict, total: int | None) -> str:
    """`step 100/1000: loss 5.1234, 12,345 tokens/s[, validation loss 5.2345]`."""
    def num(v, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) else "n/a"

    line = (f"step {m['step']}{f'/{total}' if total else ''}: loss {num(m.get('loss'), '.4f')}, "
            f"{num(m.get('tokens_per_s'), ',.0f')} tokens/s")
    if m.get("valid_loss") is not None:
        line += f", validation loss {num(m['valid_loss'], '.4f')}"
    return line


class MetricsFollower:
    """`with MetricsFollower(path, every, log, total):` calls `log(line)` for every update
    whose step is a multiple of `every`, and for the last one, while the block runs (polling
    every `interval_s`) and once more when it ends."""

    def __init__(self, path: Path, every: int, log: Callable[[str], None],
                 total: int | None = None, after_step: int = 0, interval_s: float = 2.0):
        self.path, self.every, self.log, self.total = Path(path), max(1, every), log, total
        self.interval_s = interval_s
        self.stale_id = self._identity()      # an earlier attempt's file, until replaced
        self.file_id: tuple[int, int] | None = None
        self.offset = 0
        self.logged = after_step              # the last step logged
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="metrics-follower",
                                        daemon=True)

    def __enter__(self) -> "MetricsFollower":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        """Log the due updates among the complete lines written since the last poll."""
        for m in self._new_records():
            step = m.get("step")
            if not isinstance(step, int) or step <= self.logged or m.get("skipped"):
                continue
            if step % self.every == 0 or step == self.total:
                self.log(step_line(m, self.total))
                self.logged = step

    def _identity(self) -> tuple[int, int, int] | None:
        """The earlier attempt's file: device, inode and change time. The launcher deletes it
        and the new file may get its freed inode number, never its change time."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino, st.st_ctime_ns

    def _new_records(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                identity = st.st_dev, st.st_ino
                if (*identity, st.st_ctime_ns) == self.stale_id:
                    return []
                self.stale_id = None      # (a later rewrite may reuse its inode number)
                if identity != self.file_id:
                    self.file_id, self.offset = identity, 0    # new or rewritten: from the start
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:    # not written yet, or the earlier attempt's file deleted
            self.stale_id = None
            return []
        except OSError:
            return []
        complete = data[:data.rfind(b"\n") + 1]     # a line being written waits
        self.offset += len(complete)
        out = []
        for line in complete.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


__all__ = ["MetricsFollower", "step_line"]
