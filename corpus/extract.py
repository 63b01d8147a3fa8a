"""Main text, title and publication date of an HTML page, with trafilatura, under a time limit.

trafilatura has no timeout in its Python API (trafilatura#704: `extract` can run for minutes
on pathological pages), so one bad page could hang a worker. Two ways to bound it:

- `signal` (used when we run in the main thread of a process, e.g. a Prefect process-pool
  or Ray worker, or a benchmark): a SIGALRM timer raises inside the extraction. Costs
  nothing per page. Python runs signal handlers between bytecodes, so a single long C call
  (an lxml parse) finishes first; the page-size cap (`max_page_bytes`, checked before this
  module) keeps that short.
- `subprocess` (used in worker threads, where signals cannot be delivered, e.g. Prefect's
  thread pool): extraction runs in a long-lived child process started with `spawn` (forking
  a threaded parent is unsafe); on timeout the child is killed and replaced, as datatrove's
  ExtractorSandbox does. Costs one pipe round trip per page and a child start per timeout.

`auto` picks `signal` in the main thread and `subprocess` elsewhere.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from dataclasses import dataclass

EXTRACTION_TIMEOUT = "extraction_timeout"
EXTRACTION_ERROR = "extraction_error"
EXTRACTION_EMPTY = "extraction_empty"


@dataclass
class Extracted:
    outcome: str | None          # None: text found
    text: str = ""
    title: str = ""
    date: str = ""               # publication date as trafilatura found it (YYYY-MM-DD), or ""
    error: str = ""


def extract_page(html: str, favor_precision: bool = True) -> Extracted:
    """The extraction itself, no time limit. Deterministic: trafilatura's cross-document
    `deduplicate` cache is off, so a page's result does not depend on what came before."""
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(html, with_metadata=True, favor_precision=favor_precision,
                                          include_comments=False, deduplicate=False)
    except Exception as e:  # noqa: BLE001 - a parser bug on one page must not stop the file
        return Extracted(EXTRACTION_ERROR, error=f"{type(e).__name__}: {e}"[:300])
    text = (doc.text or "").strip() if doc is not None else ""
    if not text:
        return Extracted(EXTRACTION_EMPTY)
    return Extracted(None, text=text, title=(doc.title or "").strip(), date=str(doc.date or ""))


class _Timeout(BaseException):
    """BaseException, so that no `except Exception` inside trafilatura (or ours) swallows it."""


class _Alarm:
    """The SIGALRM handler of one signal-mode extraction.

    The timer repeats until disarmed, because a raise from a signal handler can be lost: when
    the signal lands while Python runs a `__del__` or a weakref callback (garbage collection
    happens at any allocation), the exception is printed as "Exception ignored" and the
    extraction carries on. The next tick raises again. `active` is cleared before the timer is
    stopped, so a tick that arrives while we clean up does nothing."""

    def __init__(self):
        self.active = True

    def __call__(self, signum, frame):
        if self.active:
            raise _Timeout()


def _child_loop(conn, favor_precision: bool) -> None:
    """Runs in the sandbox process: extract each page sent, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            html = conn.recv()
        except EOFError:
            return
        conn.send(extract_page(html, favor_precision))


class Extractor:
    """`extract(html) -> Extracted`, never taking much longer than `timeout_s`.
    Not thread-safe: use one per worker (process_warc creates its own)."""

    def __init__(self, timeout_s: float = 10.0, mode: str = "auto", favor_precision: bool = True):
        if mode == "auto":
            in_main = threading.current_thread() is threading.main_thread()
            mode = "signal" if in_main and hasattr(signal, "setitimer") else "subprocess"
        if mode not in ("signal", "subprocess", "none"):
            raise ValueError(f"unknown timeout mode {mode!r}")
        self.mode, self.timeout_s, self.favor_precision = mode, timeout_s, favor_precision
        self._proc = self._conn = None
        self.restarts = 0
        self._n = 0

    def extract(self, html: str) -> Extracted:
        self._n += 1
        if self._n % 2000 == 0:  # trafilatura's caches grow per page (trafilatura#216)
            from trafilatura.meta import reset_caches
            reset_caches()
        if self.mode == "signal":
            return self._extract_signal(html)
        if self.mode == "subprocess":
            return self._extract_subprocess(html)
        return extract_page(html, self.favor_precision)

    def _extract_signal(self, html: str) -> Extracted:
        # Someone else's timer (e.g. pytest-timeout) is saved and re-armed with what is left.
        alarm = _Alarm()
        previous = signal.signal(signal.SIGALRM, alarm)
        other_left, started = 0.0, time.monotonic()
        try:
            try:
                other_left, _ = signal.setitimer(signal.ITIMER_REAL, self.timeout_s,
                                                 min(1.0, max(0.01, self.timeout_s / 4)))
                return extract_page(html, self.favor_precision)
            finally:
                # The first statement: from here on a tick does nothing, so no _Timeout can
                # escape from this clean-up or from the except clause below.
                alarm.active = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                if other_left:
                    signal.setitimer(signal.ITIMER_REAL,
                                     max(1e-3, other_left - (time.monotonic() - started)))
        except _Timeout:
            return Extracted(EXTRACTION_TIMEOUT, error=f"over {self.timeout_s}s")

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_loop, args=(child, self.favor_precision), daemon=True)
        self._proc.start()
        child.close()
        self._fresh = True  # its first page also pays the child's imports

    def _extract_subprocess(self, html: str) -> Extracted:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        try:
            self._conn.send(html)
            if self._conn.poll(self.timeout_s + (30 if self._fresh else 0)):
                self._fresh = False
                return self._conn.recv()
            result = Extracted(EXTRACTION_TIMEOUT, error=f"over {self.timeout_s}s")
        except (EOFError, OSError, BrokenPipeError) as e:
            result = Extracted(EXTRACTION_ERROR, error=f"extraction process died: {type(e).__name__}")
        self.close()
        self.restarts += 1
        return result

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
            self._conn.close()
        self._proc = self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
