"""Make batches in a background thread, a few ahead of the training step.

Masking and (on CUDA) copying into pinned host memory are host work: done on the training
thread they sit between two GPU steps, and the GPU waits. A thread is enough (numpy releases
the GIL in the heavy parts) and keeps the order, so a run is as deterministic as without it.
"""
from __future__ import annotations

import queue
import threading
import warnings
from typing import Callable, Generic, TypeVar

import numpy as np
import torch

T = TypeVar("T")
_DONE = object()


class Prefetcher(Generic[T]):
    """`get()` returns `produce()`'s results in order, made up to `depth` calls ahead.

    An exception in `produce()` (StopIteration included) is raised by the `get()` that would
    have returned that item; `close()` stops the thread (it is a daemon either way)."""

    def __init__(self, produce: Callable[[], T], depth: int = 2, name: str = "prefetch"):
        self._produce = produce
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = (self._produce(), None)
            except BaseException as e:  # handed to the consumer, not lost in the thread
                item = (_DONE, e)
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[0] is _DONE:
                return

    def get(self) -> T:
        while True:
            try:
                value, error = self._q.get(timeout=1.0)
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError("batch prefetch thread died") from None
                continue
            if error is not None:
                raise error
            return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._thread.is_alive():     # a producer stuck in I/O: say so rather than hang
            warnings.warn(f"{self._thread.name}: producer still running 5 s after close()",
                          RuntimeWarning, stacklevel=2)


def pinned(batch: dict) -> dict:
    """numpy arrays of a batch as torch tensors in pinned memory (for non-blocking H2D)."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)).pin_memory() if isinstance(v, np.ndarray)
            else v for k, v in batch.items()}


__all__ = ["Prefetcher", "pinned"]
