"""Background batch making (training/prefetch.py) and the compile presets of the step."""
import threading

import numpy as np
import pytest
import torch

from training.prefetch import Prefetcher, pinned
from training.step import COMPILE_PRESETS, compile_kwargs, uses_cudagraphs


def test_prefetcher_keeps_order_and_runs_ahead_in_another_thread():
    made, threads = [], set()

    def produce():
        threads.add(threading.get_ident())
        made.append(len(made))
        return made[-1]

    p = Prefetcher(produce, depth=3)
    try:
        assert [p.get() for _ in range(10)] == list(range(10))
        assert threads and threading.get_ident() not in threads
    finally:
        p.close()
    assert not p._thread.is_alive()


def test_prefetcher_raises_the_producers_error_in_order():
    items = iter([1, 2])

    def produce():
        return next(items)          # StopIteration after two items

    p = Prefetcher(produce, depth=4)
    assert p.get() == 1 and p.get() == 2
    with pytest.raises(StopIteration):
        p.get()
    with pytest.raises(RuntimeError, match="died"):
        p.get()


def test_pinned_converts_arrays_only():
    b = {"input_ids": np.arange(6).reshape(2, 3), "num_masked": 4}
    out = pinned(b) if torch.cuda.is_available() else None
    if out is None:                 # pinning needs CUDA; the conversion itself is the same
        with pytest.raises(RuntimeError):
            pinned(b)
        return
    assert out["input_ids"].is_pinned() and out["num_masked"] == 4


def test_compile_presets():
    assert compile_kwargs(False) is None and compile_kwargs("off") is None
    assert compile_kwargs(None) is None
    assert compile_kwargs(True) == {} and compile_kwargs("default") == {}
    kw = compile_kwargs("cudagraphs")
    assert kw == COMPILE_PRESETS["cudagraphs"] and kw is not COMPILE_PRESETS["cudagraphs"]
    assert uses_cudagraphs(kw) and uses_cudagraphs({"mode": "reduce-overhead"})
    assert not uses_cudagraphs({}) and not uses_cudagraphs(None)
    with pytest.raises(ValueError, match="compile='fast'"):
        compile_kwargs("fast")
