"""GPU training throughput and correctness at roberta-base shapes (issue 7), side by side.

Runs on a bare GPU box: imports only torch, numpy, transformers and the `training` core.

Variants (each in its own subprocess by default, with a time cap, so one crash, hang or OOM
does not lose the others; results are appended to --out as they arrive):
  matmul_peak              bf16 8192^3 matmul TFLOP/s on this card (MFU reference check)
  check_bf16_vs_fp32       our loss and gradients under bf16 autocast vs a float32 run
  check_hf_export          exported model vs transformers' logits, float32, 1e-4
  hf_sdpa                  RobertaForMaskedLM, attn_implementation="sdpa"   (the baseline)
  ours_eager               our real step: model + masking + AdamW/schedule + TrainStep
  ours_compile             ... with torch.compile (default mode)
  hf_sdpa_compile          RobertaForMaskedLM sdpa + torch.compile
  ours_compile_cudagraphs  ... compile="cudagraphs" (CUDA graphs + ATen dropout RNG): what
                           `pretrain` runs on a GPU
  ours_compile_cudnn_attn  ... torch.compile, SDPA restricted to the cuDNN attention backend
  ours_compile_autotune    ... inductor max-autotune (+ CUDA graphs, ATen RNG; long compile)
  hf_eager                 RobertaForMaskedLM, eager attention
Optional (only when named in --variants; their knobs are in OURS_VARIANTS):
  ours_compile_cudagraphs_nofeeder  as ours_compile_cudagraphs, but all masked batches are made
                           before timing and already on the GPU: no masking thread, no H2D copy
                           (the difference to ours_compile_cudagraphs is the feeder's cost)
  ours_compile_cudagraphs_fp32ln    ... with autocast's float32 LayerNorm outputs (the old model)
  ours_compile_cudagraphs_hostskip  ... with the non-finite check on the host before the update
  ours_compile_cudagraphs_sync      ... reading each step's metrics before launching the next
  ours_compile_cudagraphs_inductor_random  ... with inductor's Triton dropout RNG (plain
                           mode="reduce-overhead"; the preset adds fallback_random)
  ours_compile_cudagraphs_cdtune    ... with inductor coordinate-descent tuning (slow compile)
  ours_compile_flash_attn  ... SDPA restricted to the flash (FA2) backend
  ours_combined            the knobs of the COMBINABLE variants that beat ours_compile_cudagraphs
                           earlier in the same run, merged (skipped when fewer than two did)
Throughput: batch 64 x 512, 15% masked, dropout 0.1, bf16 autocast, fused AdamW, ~10 warm-up
+ 20 timed steps; every step's loss is read on the host (as a training loop that logs does).
Our step runs pipelined, as `pretrain` does: step k+1 is launched before step k's metrics are
read (TrainStep.launch / PendingStep.result), so the GPU does not wait for Python between
steps; `_sync` variants read each step before launching the next. MFU = tokens/s x FLOPs/token / 768e12 (the issue's measured bf16 peak on H200); the
FLOPs/token are computed from the config (601 MFLOP at base shapes: head on masked tokens).

    python bench/bench_train_gpu.py --out $OUT/gpu.json             # everything, ~6-7 min
    python bench/bench_train_gpu.py --variants hf_sdpa,ours_compile --out ...
    python bench/bench_train_gpu.py --smoke                          # CPU, tiny, seconds

--profile: after the timed steps, (a) ~10 steps with host-side perf_counter timers around the
feeder wait, batch_to_device, forward, backward, the loss/grad-norm sync (.tolist()),
optimizer.step and zero_grad (no profiler, so no profiler overhead), then (b) --profile-steps
steps under torch.profiler (CPU + CUDA): GPU busy (union of kernel intervals) vs wall per
step, GPU idle split by the host phase running at the time, largest idle gaps, top kernels
and kernel categories, top CPU ops by self time. Stored under variants.<name>.profile; a
chrome trace goes to <out>.<variant>.trace.json.gz (dropped when over 30 MB).
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.config import MaskingConfig, ModelConfig, OptimConfig  # noqa: E402
from training.masking import Masker, labels_from_batch  # noqa: E402
from training.model import build_model  # noqa: E402
from training.optim import build_optimizer, build_scheduler  # noqa: E402
from training.prefetch import Prefetcher, pinned  # noqa: E402
from training.step import (TrainStep, autocast_for, batch_to_device, compile_kwargs,  # noqa: E402
                           uses_cudagraphs)

# In priority order: the budget runs out at the end of this list, not the start.
ALL_VARIANTS = ["matmul_peak", "check_bf16_vs_fp32", "check_hf_export", "hf_sdpa",
                "ours_compile_cudagraphs", "ours_compile", "ours_eager", "hf_sdpa_compile",
                "ours_compile_cudnn_attn", "ours_compile_autotune", "hf_eager"]
# Our step's variants. compile: torch.compile kwargs (absent: eager); feeder: "thread" (masks
# in a background thread, as a loader worker) or "precomputed" (masked batches made up front,
# already on the device); sdpa: restrict SDPA to one backend; model / step: ModelConfig and
# TrainStep overrides; inductor: torch._inductor.config settings. Everything not overridden is
# what `pretrain` itself uses.
# Variants that pick an SDPA backend also disable inductor's caches: the backend is chosen
# while tracing, and the FX-graph cache does not key on it (run 4's flash figure was a cache hit
# on the cuDNN graph).
NO_CACHE = {"force_disable_caches": True}
OURS_VARIANTS: dict[str, dict] = {
    "ours_eager": {},
    "ours_compile": {"compile": "default"},
    # what `pretrain` runs on a GPU (compile="auto" -> step.COMPILE_PRESETS["cudagraphs"])
    "ours_compile_cudagraphs": {"compile": "cudagraphs"},
    "ours_compile_cudagraphs_nofeeder": {"compile": "cudagraphs", "feeder": "precomputed"},
    # one change at a time switched back off, to measure what each is worth
    "ours_compile_cudagraphs_fp32ln": {"compile": "cudagraphs",
                                       "model": {"low_precision_layernorm": False}},
    "ours_compile_cudagraphs_hostskip": {"compile": "cudagraphs", "step": {"device_skip": False}},
    "ours_compile_cudagraphs_sync": {"compile": "cudagraphs", "pipelined": False},
    # inductor's own per-element Triton RNG for dropout (plain mode="reduce-overhead")
    "ours_compile_cudagraphs_inductor_random": {"compile": {"mode": "reduce-overhead"}},
    # candidate speed-ups, not (yet) defaults
    "ours_compile_cudagraphs_cdtune": {"compile": "cudagraphs",
                                       "inductor": {"coordinate_descent_tuning": True}},
    "ours_compile_cudnn_attn": {"compile": "cudagraphs", "sdpa": "cudnn", "inductor": NO_CACHE},
    "ours_compile_flash_attn": {"compile": "cudagraphs", "sdpa": "flash", "inductor": NO_CACHE},
    # mode="max-autotune" with the preset's ATen RNG (mode and options cannot be combined)
    "ours_compile_autotune": {"compile": {"options": {
        "max_autotune": True, "coordinate_descent_tuning": True, "triton.cudagraphs": True,
        "fallback_random": True}}},
}
# `ours_combined` is built while the benchmark runs: the knobs of every COMBINABLE variant that
# beat COMBINE_BASE (by > 0.5%) in this run, merged. It is skipped when none did.
COMBINE_BASE = "ours_compile_cudagraphs"
COMBINABLE = ["ours_compile_flash_attn", "ours_compile_cudagraphs_cdtune",
              "ours_compile_cudnn_attn"]
OURS_VARIANTS.update(json.loads(os.environ.get("BENCH_EXTRA_VARIANTS", "{}")))  # child processes
# Accepted by --variants, never run by default.
OPTIONAL_VARIANTS = [n for n in OURS_VARIANTS if n not in ALL_VARIANTS] + ["ours_combined"]
SMOKE_VARIANTS = ["matmul_peak", "check_bf16_vs_fp32", "check_hf_export", "hf_sdpa",
                  "ours_eager", "ours_compile_cudagraphs_fp32ln", "hf_eager"]
COMPILE_MODES = {"hf_sdpa_compile": {}}          # HF's compiled variant
MIN_SECONDS = {"compile": 100, "plain": 25}      # skip a variant when less budget is left
RESULT_TAG = "RESULT_JSON "


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# setup shared by the variants
# --------------------------------------------------------------------------------------------

def shapes(args) -> tuple[ModelConfig, int, int]:
    if args.smoke:
        return ModelConfig.named("tiny", vocab_size=1000), 4, 64
    return ModelConfig.named("base"), args.batch, args.seq


def device_of(args) -> torch.device:
    return torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_precision(fast: bool) -> None:
    """Fast: TF32 for any fp32 matmul (bf16 autocast covers the model anyway).
    Reference: true fp32, for correctness checks. CUDA only: on CPU, "high" selects a
    reduced-precision oneDNN path that is ~50x slower on CPUs without bf16 units."""
    if not torch.cuda.is_available():
        return
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast
    torch.set_float32_matmul_precision("high" if fast else "highest")


def random_blocks(n: int, T: int, cfg: ModelConfig, seed: int = 1) -> np.ndarray:
    """Full FULL-SENTENCES-like blocks: <s> ... with a few </s> inside, no padding."""
    rng = np.random.default_rng(seed)
    b = rng.integers(4, cfg.mask_token_id, size=(n, T), dtype=np.int64)
    b[:, 0] = cfg.bos_id
    b[:, 37::89] = cfg.eos_id
    b[:, -1] = cfg.eos_id
    return b


class BatchFeeder:
    """Masks batches in a background thread, as `pretrain` does (training.prefetch), and hands
    out pinned tensors; block indices keep increasing so every batch gets fresh masks."""

    def __init__(self, cfg: ModelConfig, B: int, T: int, device, dense_labels: bool, depth: int = 4):
        self.blocks = random_blocks(B * 16, T, cfg)
        self.masker = Masker(MaskingConfig.for_model(cfg), seed=0, pad_id=cfg.pad_id)
        self.B, self.device, self.dense = B, device, dense_labels
        self.mask_seconds = 0.0
        self.masked_batches = 0
        self.prefetch = Prefetcher(self._make, depth=depth, name="bench-batches")

    def _make(self) -> dict:
        i, n = self.masked_batches, len(self.blocks) // self.B
        j = i % n
        t0 = time.perf_counter()
        b = self.masker(self.blocks[j * self.B:(j + 1) * self.B],
                        np.arange(i * self.B, (i + 1) * self.B), epoch=0)
        if self.dense:
            b = {"input_ids": b["input_ids"], "labels": labels_from_batch(b),
                 "num_masked": b["num_masked"], "num_tokens": b["num_tokens"]}
        out = pinned(b) if self.device.type == "cuda" else {
            k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in b.items()}
        self.mask_seconds += time.perf_counter() - t0
        self.masked_batches += 1
        return out

    def get(self) -> dict:
        return self.prefetch.get()

    def close(self):
        self.prefetch.close()


class PrecomputedFeeder:
    """All batches masked up front and already on `device` (no thread, no H2D copy in the
    timed loop); cycles when more are asked for than were made."""

    def __init__(self, cfg: ModelConfig, B: int, T: int, device, n: int):
        blocks = random_blocks(B * 16, T, cfg)
        masker = Masker(MaskingConfig.for_model(cfg), seed=0, pad_id=cfg.pad_id)
        nb = len(blocks) // B
        self.batches = []
        t0 = time.perf_counter()
        for i in range(n):
            j = i % nb
            b = masker(blocks[j * B:(j + 1) * B], np.arange(i * B, (i + 1) * B), epoch=0)
            self.batches.append(batch_to_device(b, device))
        sync(device)
        self.mask_seconds = time.perf_counter() - t0     # incl. the copies; not in the loop
        self.masked_batches = n
        self.i = 0

    def get(self) -> dict:
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b

    def close(self):
        self.batches = []


def hf_model(cfg: ModelConfig, attn: str, device):
    import transformers
    hcfg = transformers.RobertaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.ffn_size,
        max_position_embeddings=cfg.num_position_rows, type_vocab_size=1,
        layer_norm_eps=cfg.layer_norm_eps, pad_token_id=cfg.pad_id, bos_token_id=cfg.bos_id,
        eos_token_id=cfg.eos_id, hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.attention_dropout)
    torch.manual_seed(0)
    m = transformers.AutoModelForMaskedLM.from_config(hcfg, attn_implementation=attn)
    return m.to(device).train()


# --------------------------------------------------------------------------------------------
# variants
# --------------------------------------------------------------------------------------------

def run_matmul_peak(args) -> dict:
    device = device_of(args)
    n = 1024 if device.type == "cpu" else 8192
    dtype = torch.bfloat16
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    iters = 3 if device.type == "cpu" else 50
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    dt = time.perf_counter() - t0
    return {"n": n, "tflops": 2 * n ** 3 * iters / dt / 1e12}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def run_check_bf16_vs_fp32(args) -> dict:
    """Same weights, same batch, dropout off: bf16 autocast vs float32 (no TF32)."""
    device = device_of(args)
    cfg, _, T = shapes(args)
    cfg = cfg.replace(dropout=0.0, attention_dropout=0.0)
    B = 4 if args.smoke else 16
    set_precision(fast=False)
    model = build_model(cfg, device=device, seed=0)
    batch = batch_to_device(Masker(MaskingConfig.for_model(cfg), seed=0)(
        random_blocks(B, T, cfg), np.arange(B), epoch=0), device)

    def loss_and_grads(dtype):
        model.zero_grad(set_to_none=True)
        ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(
            device.type, enabled=False)
        with ctx:
            out = model(batch["input_ids"], batch["mlm_positions"], batch["mlm_targets"])
        loss = out["mlm_loss_sum"] / batch["num_masked"]
        loss.backward()
        return loss.detach().float(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    l32, g32 = loss_and_grads(None)
    l16, g16 = loss_and_grads(torch.bfloat16)
    per = {n: _rel(g16[n], g32[n]) for n in g32 if g32[n].norm() > 0}
    flat16 = torch.cat([g.flatten().double() for g in g16.values()])
    flat32 = torch.cat([g.flatten().double() for g in g32.values()])
    worst = max(per, key=per.get)
    cos = float(torch.nn.functional.cosine_similarity(flat16, flat32, dim=0))
    res = {"loss_fp32": float(l32), "loss_bf16": float(l16),
           "loss_rel_err": abs(float(l16) - float(l32)) / abs(float(l32)),
           "grad_rel_err_global": _rel(flat16, flat32), "grad_cosine": cos,
           "grad_rel_err_max_tensor": per[worst], "grad_rel_err_max_tensor_name": worst,
           "grad_rel_err_median_tensor": float(np.median(list(per.values()))),
           "batch": [B, T]}
    # bf16 has an 8-bit mantissa (rel. step 2^-8 = 0.4%); through 12 post-LN layers errors of a
    # few percent per tensor are expected, a wrong kernel gives O(1).
    res["pass"] = bool(res["loss_rel_err"] < 1e-2 and res["grad_rel_err_global"] < 5e-2
                       and res["grad_rel_err_max_tensor"] < 0.15 and cos > 0.998)
    set_precision(fast=True)
    return res


def run_check_hf_export(args) -> dict:
    import transformers
    device = device_of(args)
    cfg, _, _ = shapes(args)
    set_precision(fast=False)
    from training.hf_io import export_hf
    ours = build_model(cfg, seed=0).eval()
    with torch.no_grad():
        for p in ours.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.05)   # non-zero biases so the mapping matters
    res = {}
    with tempfile.TemporaryDirectory() as d:
        export_hf(ours, d)
        ours = ours.to(device)
        g = torch.Generator().manual_seed(0)
        T = 128
        ids = torch.randint(4, cfg.mask_token_id, (4, T), generator=g)
        ids[:, 0], ids[:, -1] = cfg.bos_id, cfg.eos_id
        ids[1, 10] = cfg.mask_token_id
        ids[2, 70:] = cfg.pad_id
        ids[3, 20:] = cfg.pad_id
        ids = ids.to(device)
        am = (ids != cfg.pad_id).long()
        for attn in ("sdpa", "eager"):
            hf = transformers.AutoModelForMaskedLM.from_pretrained(
                d, attn_implementation=attn).to(device).eval()
            with torch.no_grad():
                for name, mask in (("no_padding", None), ("padding", am)):
                    x = ids if mask is not None else ids.clone().masked_fill(ids == cfg.pad_id, 5)
                    a = ours.logits(x, mask)
                    b = hf(input_ids=x, attention_mask=mask).logits
                    res[f"{attn}_{name}_max_abs_diff"] = float((a - b).abs().max())
            del hf
    res["max_abs_diff"] = max(v for k, v in res.items() if k.endswith("diff"))
    res["pass"] = bool(res["max_abs_diff"] < 1e-4)
    set_precision(fast=True)
    return res


def _timed_loop(step_fn, feeder, device, warmup: int, steps: int, cap_s: float, t_start: float,
                drain=None) -> dict:
    """step_fn(batch) -> loss of the step it finished (None when it only launched one);
    drain() -> the loss of a step still in flight (pipelined steps), or None."""
    log_every = max(1, warmup // 2)
    t_first = None
    for i in range(warmup):
        t0 = time.perf_counter()
        step_fn(feeder.get())
        if i == 0:
            t_first = time.perf_counter() - t0
            log(f"  first step (incl. compile) {t_first:.1f}s")
        elif i % log_every == 0:
            log(f"  warm-up step {i}")
        if time.perf_counter() - t_start > cap_s * 0.8:
            raise TimeoutError(f"warm-up exceeded 80% of the {cap_s:.0f}s cap")
    sync(device)
    start_ev = end_ev = None
    if device.type == "cuda":
        start_ev, end_ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.reset_peak_memory_stats()
        start_ev.record()
    t0 = time.perf_counter()
    done, losses, tokens = 0, [], 0
    for _ in range(steps):
        batch = feeder.get()
        loss = step_fn(batch)
        if loss is not None:
            losses.append(loss)
        tokens += int(batch["num_tokens"])
        done += 1
        if time.perf_counter() - t_start > cap_s * 0.95:
            break
    if drain is not None and (loss := drain()) is not None:
        losses.append(loss)
    if device.type == "cuda":
        end_ev.record()
    sync(device)
    wall = time.perf_counter() - t0
    res = {"timed_steps": done, "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
           "step_ms": 1000 * wall / done, "first_step_s": t_first,
           "loss_first_last": [losses[0], losses[-1]],
           "mask_ms_per_batch": 1000 * feeder.mask_seconds / max(1, feeder.masked_batches)}
    if start_ev is not None:
        gpu_ms = start_ev.elapsed_time(end_ev)
        res["gpu_tokens_per_s"] = tokens / (gpu_ms / 1000)
        res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return res


# --------------------------------------------------------------------------------------------
# --profile: where the step time goes
# --------------------------------------------------------------------------------------------

HOST_SEGMENTS = ("feeder_wait", "batch_to_device", "forward", "backward", "sync_tolist",
                 "optimizer_step", "zero_grad")
KERNEL_CATEGORIES = (   # first match wins (lower-cased kernel name)
    ("copy/memcpy/memset", ("memcpy", "memset", "copy_kernel", "catarraybatchedcopy",
                            "direct_copy")),
    ("optimizer/adam/foreach", ("adam", "multi_tensor", "foreach", "_amp_", "lpnorm")),
    ("flash/attention", ("flash", "fmha", "attention", "attn", "sdpa", "cudnn_generated")),
    ("gemm/matmul", ("gemm", "matmul", "cutlass", "xmma", "nvjet", "cublas", "wgmma", "splitk",
                     "triton_tem", "sm90_", "sm80_")),
    ("softmax/cross-entropy", ("softmax", "cross_entropy", "nll_loss", "logsumexp")),
    ("layernorm/norm", ("layer_norm", "layernorm", "rms_norm", "_norm_")),
    ("elementwise/triton fused", ("triton", "elementwise", "vectorized", "unrolled", "reduce",
                                  "fused", "dropout", "gelu", "index", "gather", "scatter",
                                  "fill", "embedding")),
)
GPU_ACTIVITIES = ("kernel", "gpu_memcpy", "gpu_memset", "concurrent_kernel")
TRACE_MAX_BYTES = 30 * 2 ** 20


def kernel_category(name: str) -> str:
    n = name.lower()
    for cat, pats in KERNEL_CATEGORIES:
        if any(p in n for p in pats):
            return cat
    return "other"


class _HostTimer:
    """perf_counter timers around named calls of the main thread (outermost call only, so
    nothing is counted twice); optionally a record_function label for the trace."""

    def __init__(self, annotate: bool = False):
        self.tid = threading.get_ident()
        self.depth = 0
        self.annotate = annotate
        self.cur: dict[str, float] = {}
        self.steps: list[dict[str, float]] = []

    @contextlib.contextmanager
    def seg(self, key: str):
        if self.depth or threading.get_ident() != self.tid:
            yield
            return
        self.depth += 1
        ctx = (torch.profiler.record_function("bench::" + key) if self.annotate
               else contextlib.nullcontext())
        t0 = time.perf_counter()
        try:
            with ctx:
                yield
        finally:
            self.cur[key] = self.cur.get(key, 0.0) + time.perf_counter() - t0
            self.depth -= 1

    def wrap(self, key: str, fn):
        def timed(*a, **k):
            with self.seg(key):
                return fn(*a, **k)
        return timed

    def end_step(self, total_s: float) -> None:
        d = {k: 1000 * v for k, v in self.cur.items()}
        d["other"] = 1000 * total_s - sum(d.values())
        d["step_total"] = 1000 * total_s
        self.steps.append(d)
        self.cur = {}

    def summary(self) -> dict:
        seen = {k for st in self.steps for k in st}
        keys = [k for k in HOST_SEGMENTS if k in seen] + sorted(
            seen - set(HOST_SEGMENTS) - {"other", "step_total"}) + ["other", "step_total"]
        out = {}
        for k in keys:
            vals = [s.get(k, 0.0) for s in self.steps]
            if vals:
                out[k] = {"mean_ms": float(np.mean(vals)), "median_ms": float(np.median(vals)),
                          "max_ms": float(np.max(vals))}
        return out


_MISSING = object()


@contextlib.contextmanager
def _host_patches(timer: _HostTimer, trainstep=None, opt=None):
    """Time the phases of a step from outside `training/`: batch_to_device (module global
    used by TrainStep), the step's forward, Tensor.backward, Tensor.tolist (the step's one host
    sync), optimizer.step / zero_grad. Everything is restored on exit."""
    import training.step as step_mod
    undo = []

    def patch(obj, attr, key):
        own = vars(obj).get(attr, _MISSING)
        setattr(obj, attr, timer.wrap(key, getattr(obj, attr)))
        undo.append((obj, attr, own))

    try:
        patch(step_mod, "batch_to_device", "batch_to_device")
        if trainstep is not None:
            patch(trainstep, "forward", "forward")
        patch(torch.Tensor, "backward", "backward")
        patch(torch.Tensor, "tolist", "sync_tolist")
        if opt is not None:
            patch(opt, "step", "optimizer_step")
            patch(opt, "zero_grad", "zero_grad")
        yield
    finally:
        for obj, attr, own in reversed(undo):
            if own is _MISSING:
                delattr(obj, attr)
            else:
                setattr(obj, attr, own)


def _instrumented_steps(step_fn, feeder, device, n: int, timer: _HostTimer, on_step=None) -> float:
    """n steps with the host timers; returns wall ms per step (synchronised at the end).
    Under the profiler (timer.annotate) the last step's annotation includes the final sync,
    so the recorded window ends when the GPU is done."""
    sync(device)
    t_all = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        ctx = (torch.profiler.record_function("bench::step") if timer.annotate
               else contextlib.nullcontext())
        with ctx:
            with timer.seg("feeder_wait"):
                batch = feeder.get()
            step_fn(batch)
            if timer.annotate and i == n - 1:
                with timer.seg("final_sync"):
                    sync(device)
        timer.end_step(time.perf_counter() - t0)
        if on_step is not None:
            on_step()
    sync(device)
    return 1000 * (time.perf_counter() - t_all) / n


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _overlap(a0, a1, b0, b1) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def _analyse_profile(prof, steps: int, cuda: bool) -> dict:
    """GPU busy/idle, idle split by host phase, gaps, kernel tables, CPU ops from the kineto
    events of the active steps. Times in ms; "per step" = total / steps."""
    events = prof.profiler.kineto_results.events()
    main_tid = None
    ann: dict[str, list[tuple[int, int]]] = {}
    gpu = []   # (start_ns, end_ns, name, stream)
    def attr(e, method: str, default=None):
        # _KinetoEvent's methods differ across torch versions (2.11 has no activity_type).
        fn = getattr(e, method, None)
        return fn() if callable(fn) else default

    for e in events:
        name = e.name()
        at = str(attr(e, "activity_type", ""))
        if name.startswith("bench::") and e.device_type() == torch.autograd.DeviceType.CPU:
            ann.setdefault(name[len("bench::"):], []).append((e.start_ns(), e.end_ns()))
            if name == "bench::step":
                main_tid = e.start_thread_id()
            continue
        if at in GPU_ACTIVITIES or (e.device_type() == torch.autograd.DeviceType.CUDA
                                    and not attr(e, "is_user_annotation", False)
                                    and not at.startswith("gpu_user")):
            if name.startswith(("bench::", "ProfilerStep")):
                continue
            try:
                stream = e.device_resource_id()
            except Exception:  # noqa: BLE001
                stream = None
            gpu.append((e.start_ns(), e.end_ns(), name, stream))
    step_iv = sorted(ann.get("step", []))
    if not step_iv:
        return {"error": "no bench::step annotations in the profile"}
    w0, w1 = step_iv[0][0], step_iv[-1][1]
    window_ms = (w1 - w0) / 1e6
    res: dict = {"profiled_steps": len(step_iv), "window_ms": window_ms,
                 "wall_ms_per_step": window_ms / len(step_iv), "main_thread": main_tid}
    n = len(step_iv)
    # CPU ops by self time (key_averages covers the active steps)
    cpu_rows = []
    for a in prof.key_averages():
        if getattr(a, "device_type", None) not in (None, torch.autograd.DeviceType.CPU):
            continue
        cpu_rows.append({"name": a.key[:100], "count": a.count,
                         "self_cpu_ms": a.self_cpu_time_total / 1000,
                         "self_cpu_ms_per_step": a.self_cpu_time_total / 1000 / n,
                         "cpu_total_ms": a.cpu_time_total / 1000})
    cpu_rows.sort(key=lambda r: -r["self_cpu_ms"])
    res["top_cpu_ops"] = cpu_rows[:15]
    if not cuda:
        res["gpu"] = None
        return res
    gpu = [(max(a, w0), min(b, w1), nm, st) for a, b, nm, st in gpu if b > w0 and a < w1]
    busy = _union([(a, b) for a, b, _, _ in gpu])
    busy_ns = sum(b - a for a, b in busy)
    ksum_ns = sum(b - a for a, b, _, _ in gpu)
    # per step: wall, busy, kernel count (windows = consecutive bench::step starts)
    per_step = []
    for i, (s0, s1) in enumerate(step_iv):
        e1 = step_iv[i + 1][0] if i + 1 < n else w1
        per_step.append({"wall_ms": (e1 - s0) / 1e6,
                         "gpu_busy_ms": sum(_overlap(a, b, s0, e1) for a, b in busy) / 1e6,
                         "kernels": sum(1 for a, _, _, _ in gpu if s0 <= a < e1)})
    # idle gaps (window minus busy), attributed to the host phase running at the time
    gaps, t = [], w0
    for a, b in busy:
        if a > t:
            gaps.append((t, a))
        t = max(t, b)
    if t < w1:
        gaps.append((t, w1))
    idle_ns = sum(b - a for a, b in gaps)
    seg_iv = {k: v for k, v in ann.items() if k != "step"}
    idle_by = {k: 0 for k in seg_iv}
    for g0, g1 in gaps:
        for k, ivs in seg_iv.items():
            idle_by[k] += sum(_overlap(g0, g1, a, b) for a, b in ivs)
    idle_by["other (in step, outside the timed phases)"] = idle_ns - sum(idle_by.values())
    hist = {"<10us": 0, "10-100us": 0, "0.1-1ms": 0, ">1ms": 0}
    for g0, g1 in gaps:
        d = (g1 - g0) / 1e3
        hist["<10us" if d < 10 else "10-100us" if d < 100 else "0.1-1ms" if d < 1000 else ">1ms"] += g1 - g0
    by_start = sorted(gpu)
    starts = [a for a, _, _, _ in by_start]
    top_gaps = []
    for g0, g1 in sorted(gaps, key=lambda g: g[0] - g[1])[:10]:   # largest first
        i = bisect.bisect_left(starts, g1)
        before = [x for x in by_start[:i] if x[1] <= g0 + 1]
        phase = max(seg_iv, key=lambda k: sum(_overlap(g0, g1, a, b) for a, b in seg_iv[k]),
                    default=None)
        if phase is not None and not sum(_overlap(g0, g1, a, b) for a, b in seg_iv[phase]):
            phase = None
        top_gaps.append({"gap_ms": (g1 - g0) / 1e6, "at_ms": (g0 - w0) / 1e6,
                         "step": max(0, bisect.bisect_right([s for s, _ in step_iv], g0) - 1),
                         "host_phase": phase,
                         "after_kernel": before[-1][2][:80] if before else None,
                         "before_kernel": by_start[i][2][:80] if i < len(by_start) else None})
    # kernel tables
    agg: dict[str, list] = {}
    for a, b, nm, _ in gpu:
        r = agg.setdefault(nm, [0, 0])
        r[0] += 1
        r[1] += b - a
    kern = sorted(agg.items(), key=lambda kv: -kv[1][1])
    cats: dict[str, float] = {}
    for nm, (_, ns) in agg.items():
        c = kernel_category(nm)
        cats[c] = cats.get(c, 0) + ns
    res["gpu"] = {
        "gpu_busy_ms_per_step": busy_ns / 1e6 / n,
        "kernel_sum_ms_per_step": ksum_ns / 1e6 / n,
        "gpu_idle_ms_per_step": idle_ns / 1e6 / n,
        "gpu_idle_frac": idle_ns / max(1, w1 - w0),
        "kernels_per_step": len(gpu) / n,
        "streams": len({st for _, _, _, st in gpu}),
        "per_step": per_step,
        "idle_ms_per_step_by_host_phase": {k: v / 1e6 / n for k, v in
                                           sorted(idle_by.items(), key=lambda kv: -kv[1])},
        "idle_ms_per_step_by_gap_size": {k: v / 1e6 / n for k, v in hist.items()},
        "top_idle_gaps": top_gaps,
        "categories_ms_per_step": {k: v / 1e6 / n for k, v in
                                   sorted(cats.items(), key=lambda kv: -kv[1])},
        "top_kernels": [{"name": nm[:100], "category": kernel_category(nm), "count": c,
                         "total_ms": ns / 1e6, "ms_per_step": ns / 1e6 / n,
                         "pct_gpu_time": 100 * ns / max(1, ksum_ns)}
                        for nm, (c, ns) in kern[:25]],
    }
    return res


def _dynamo_counters() -> dict:
    try:
        from torch._dynamo.utils import counters
        return {k: {kk: vv for kk, vv in list(counters[k].items())[:20]}
                for k in ("stats", "graph_break", "inductor") if k in counters}
    except Exception as e:  # noqa: BLE001
        return {"error": repr(e)}


def profiled(args, name: str) -> bool:
    return bool(args.profile) and (args.profile == "all" or name in args.profile.split(","))


def profile_variant(args, name: str, step_fn, feeder, device, t_start: float,
                    trainstep=None, opt=None) -> dict:
    """Host timers (no profiler), then torch.profiler over --profile-steps steps. Never raises:
    the variant's timing is already taken and must not be lost to a profiler problem."""
    try:
        return _profile_variant(args, name, step_fn, feeder, device, t_start, trainstep, opt)
    except Exception as e:  # noqa: BLE001
        return {"status": "error", "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-2000:]}


def _profile_variant(args, name, step_fn, feeder, device, t_start, trainstep, opt) -> dict:
    from torch.profiler import ProfilerActivity, profile, schedule
    out: dict = {}
    if time.perf_counter() - t_start > args.cap_s * 0.8:
        return {"status": "skipped", "error": "too little of the variant's cap left"}
    n_host = max(10, args.profile_steps) if not args.smoke else 3
    timer = _HostTimer(annotate=False)
    with _host_patches(timer, trainstep, opt):
        out["host_step_ms"] = _instrumented_steps(step_fn, feeder, device, n_host, timer)
    out["host_ms_per_step"] = timer.summary()
    out["host_steps"] = n_host
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    n = args.profile_steps
    timer = _HostTimer(annotate=True)
    t0 = time.perf_counter()
    # one warm-up step under the profiler (CUPTI start-up), then n recorded steps
    with profile(activities=acts, record_shapes=False, with_stack=False,
                 schedule=schedule(wait=0, warmup=1, active=n, repeat=1)) as prof:
        with _host_patches(timer, trainstep, opt):
            _instrumented_steps(step_fn, feeder, device, n + 1, timer, on_step=prof.step)
    out["profiled_pass_s"] = time.perf_counter() - t0
    # The trace first: if the analysis below trips over this torch version's profiler API,
    # the raw events still come back and can be read offline.
    trace = Path(f"{args.out}.{name}.trace.json.gz")
    try:
        trace.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace))
        size = trace.stat().st_size
        if size > TRACE_MAX_BYTES:
            trace.unlink()
            out["trace"] = None
            out["trace_note"] = f"dropped: {size / 2 ** 20:.0f} MB gzipped"
        else:
            out["trace"] = str(trace)
            out["trace_mb"] = size / 2 ** 20
    except Exception as e:  # noqa: BLE001
        out["trace"] = None
        out["trace_note"] = f"export failed: {e!r}"
    out["device_ops"] = _device_op_table(prof, n)
    t0 = time.perf_counter()
    try:
        out.update(_analyse_profile(prof, n, cuda))
    except Exception as e:  # noqa: BLE001
        out["analysis_error"] = f"{type(e).__name__}: {e}"
        out["analysis_traceback"] = traceback.format_exc()[-2000:]
    out["analysis_s"] = time.perf_counter() - t0
    out["host_ms_per_step_profiled"] = {k: v["mean_ms"] for k, v in timer.summary().items()}
    if trainstep is not None or "compile" in name:
        out["dynamo_counters"] = _dynamo_counters()
    out["status"] = "ok"
    return out


def _device_op_table(prof, steps: int, top: int = 30) -> list[dict]:
    """Top ops by self device time from key_averages() (a stable API, unlike kineto events)."""
    try:
        rows = []
        for a in prof.key_averages():
            dev_ms = getattr(a, "self_device_time_total", getattr(a, "self_cuda_time_total", 0)) / 1000
            if dev_ms > 0:
                rows.append({"name": a.key[:100], "count": a.count, "self_device_ms_per_step":
                             dev_ms / steps, "category": kernel_category(a.key)})
        rows.sort(key=lambda r: -r["self_device_ms_per_step"])
        return rows[:top]
    except Exception as e:  # noqa: BLE001
        return [{"error": f"{type(e).__name__}: {e}"}]


def format_profile(name: str, p: dict) -> list[str]:
    """A few human-readable lines for the summary."""
    if not p or p.get("status") != "ok":
        return [f"{name:26s} profile: {p.get('status') if p else None} {p.get('error', '') if p else ''}"]
    h = p.get("host_ms_per_step", {})
    host = ", ".join(f"{k} {v['mean_ms']:.2f}" for k, v in h.items() if v["mean_ms"] >= 0.05)
    lines = [f"{name:26s} host ms/step (no profiler, {p['host_steps']} steps, wall "
             f"{p['host_step_ms']:.2f}): {host}"]
    g = p.get("gpu")
    if g:
        lines.append(f"{'':26s} profiled wall {p['wall_ms_per_step']:.2f} ms/step; GPU busy "
                     f"{g['gpu_busy_ms_per_step']:.2f} ms, idle {g['gpu_idle_ms_per_step']:.2f} ms "
                     f"({g['gpu_idle_frac']:.1%}); {g['kernels_per_step']:.0f} kernels/step")
        lines.append(f"{'':26s} idle by host phase: " + ", ".join(
            f"{k} {v:.2f}" for k, v in g["idle_ms_per_step_by_host_phase"].items() if v >= 0.05))
        lines.append(f"{'':26s} idle by gap size: " + ", ".join(
            f"{k} {v:.2f}" for k, v in g["idle_ms_per_step_by_gap_size"].items()))
        lines.append(f"{'':26s} GPU ms/step by category: " + ", ".join(
            f"{k} {v:.2f}" for k, v in g["categories_ms_per_step"].items()))
        for k in g["top_kernels"][:5]:
            lines.append(f"{'':28s}{k['ms_per_step']:7.2f} ms/step {k['pct_gpu_time']:5.1f}%  "
                         f"x{k['count']:<5d} {k['name'][:70]}")
    elif "wall_ms_per_step" in p:
        lines.append(f"{'':26s} profiled wall {p['wall_ms_per_step']:.2f} ms/step (no CUDA)")
    if p.get("analysis_error"):
        lines.append(f"{'':26s} analysis failed: {p['analysis_error']}")
    for r in p.get("device_ops", [])[:8]:
        if "error" not in r:
            lines.append(f"{'':28s}{r['self_device_ms_per_step']:7.2f} ms/step device  "
                         f"x{r['count']:<5d} {r['name'][:70]}")
    top = p.get("top_cpu_ops", [])[:5]
    lines.append(f"{'':26s} top self-CPU ms/step: " + ", ".join(
        f"{r['name'][:40]} {r['self_cpu_ms_per_step']:.2f}" for r in top))
    if p.get("trace"):
        lines.append(f"{'':26s} trace {p['trace']} ({p['trace_mb']:.1f} MB)")
    return lines


def run_ours(args, name: str) -> dict:
    knobs = OURS_VARIANTS[name]
    device = device_of(args)
    cfg, B, T = shapes(args)
    cfg = cfg.replace(**knobs.get("model", {}))
    set_precision(fast=True)
    if knobs.get("inductor"):
        import torch._inductor.config as inductor_config
        for k, v in knobs["inductor"].items():
            setattr(inductor_config, k, v)
    t_start = time.perf_counter()
    model = build_model(cfg, device=device, seed=0)
    ocfg = OptimConfig.named("base", warmup_steps=100)
    opt = build_optimizer(model, ocfg)
    compile_kw = compile_kwargs(knobs.get("compile"))
    compile_note = None
    if device.type != "cuda" and compile_kw is not None and (
            uses_cudagraphs(compile_kw) or compile_kw.get("options", {}).get("max_autotune")):
        compile_kw, compile_note = None, "CUDA graphs / max-autotune need CUDA: eager here"
    step = TrainStep(model, opt, build_scheduler(opt, ocfg), **knobs.get("step", {}),
                     compile=compile_kw if compile_kw is not None else False)
    precomputed = knobs.get("feeder") == "precomputed"
    if precomputed:
        n_pre = args.warmup + args.steps + (max(10, args.profile_steps) + args.profile_steps + 1
                                            if profiled(args, name) else 0)
        feeder = PrecomputedFeeder(cfg, B, T, device, n=n_pre)
    else:
        feeder = BatchFeeder(cfg, B, T, device, dense_labels=False)
    attn_ctx = contextlib.nullcontext
    if knobs.get("sdpa") and device.type == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                   "efficient": SDPBackend.EFFICIENT_ATTENTION}[knobs["sdpa"]]
        attn_ctx = lambda: sdpa_kernel([backend])  # noqa: E731

    pipelined = knobs.get("pipelined", True)
    pending: list = []

    def step_fn(batch):
        """Pipelined (as `pretrain` runs): launch this update, then read the previous one."""
        with attn_ctx():
            pending.append(step.launch([batch]))
        if not pipelined or len(pending) > 1:
            return pending.pop(0).result().loss
        return None

    def drain():
        return pending.pop(0).result().loss if pending else None
    try:
        res = _timed_loop(step_fn, feeder, device, args.warmup, args.steps, args.cap_s, t_start,
                          drain=drain)
        if profiled(args, name):
            res["profile"] = profile_variant(args, name, step_fn, feeder, device, t_start,
                                             trainstep=step, opt=opt)
    finally:
        feeder.close()
    res["knobs"] = knobs
    res["fused_adamw"] = bool(opt.defaults.get("fused"))
    res["device_skip"] = step._device_skip()
    res["compile"] = compile_kw
    res["compiled"] = step.forward is not model
    if compile_note:
        res["compile_note"] = compile_note
    if precomputed:
        res["feeder"] = f"precomputed on {device.type} ({feeder.masked_batches} batches)"
    res["skipped_steps"] = step.skipped_total
    return res


def run_hf(args, name: str) -> dict:
    device = device_of(args)
    cfg, B, T = shapes(args)
    set_precision(fast=True)
    t_start = time.perf_counter()
    model = hf_model(cfg, "eager" if name == "hf_eager" else "sdpa", device)
    ocfg = OptimConfig.named("base", warmup_steps=100)
    opt = build_optimizer(model, ocfg)          # the same (fused) AdamW as ours
    sched = build_scheduler(opt, ocfg)
    fwd = torch.compile(model, **COMPILE_MODES[name]) if name in COMPILE_MODES else model
    feeder = BatchFeeder(cfg, B, T, device, dense_labels=True)

    def step_fn(batch):
        ids = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        with autocast_for(device):
            loss = fwd(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())
    try:
        res = _timed_loop(step_fn, feeder, device, args.warmup, args.steps, args.cap_s, t_start)
        if profiled(args, name):
            res["profile"] = profile_variant(args, name, step_fn, feeder, device, t_start, opt=opt)
    finally:
        feeder.close()
    res["fused_adamw"] = bool(opt.defaults.get("fused"))
    return res


def run_variant(args, name: str) -> dict:
    if name == "matmul_peak":
        return run_matmul_peak(args)
    if name == "check_bf16_vs_fp32":
        return run_check_bf16_vs_fp32(args)
    if name == "check_hf_export":
        return run_check_hf_export(args)
    if name in OURS_VARIANTS:
        return run_ours(args, name)
    if name.startswith("hf"):
        return run_hf(args, name)
    raise ValueError(f"unknown variant {name!r}; choose from {ALL_VARIANTS + OPTIONAL_VARIANTS}")


def run_variant_safely(args, name: str) -> dict:
    t0 = time.perf_counter()
    try:
        res = run_variant(args, name)
        res["status"] = "ok"
    except Exception as e:  # one failing variant must not lose the others
        res = {"status": "error", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()[-3000:]}
    res["variant_wall_s"] = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------

def environment(args) -> dict:
    env = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
           "cuda_available": torch.cuda.is_available(), "smoke": args.smoke}
    try:
        import transformers
        env["transformers"] = transformers.__version__
    except Exception as e:  # noqa: BLE001
        env["transformers"] = f"unavailable: {e}"
    if torch.cuda.is_available() and not args.smoke:
        env["device"] = torch.cuda.get_device_name(0)
        env["capability"] = list(torch.cuda.get_device_capability(0))
        env["cuda"] = torch.version.cuda
    return env


def run_child(args, name: str, remaining: float) -> dict:
    """Run one variant in a fresh process (own CUDA context), killed at its time cap."""
    cap = min(args.cap_s, remaining)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--cap-s", str(cap), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--batch", str(args.batch), "--seq", str(args.seq), "--out", str(args.out)] + (
               ["--smoke"] if args.smoke else [])
    if args.profile:
        cmd += ["--profile", args.profile, "--profile-steps", str(args.profile_steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=str(REPO))
    killed = threading.Event()

    def kill():
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    timer = threading.Timer(cap + 15, kill)
    timer.start()
    result, tail = None, []
    try:
        for line in proc.stdout:
            if line.startswith(RESULT_TAG):
                result = json.loads(line[len(RESULT_TAG):])
            else:
                tail = (tail + [line.rstrip()])[-40:]
                print(f"    {line.rstrip()}", flush=True)
        proc.wait()
    finally:
        timer.cancel()
        try:   # reap inductor compile workers left in the child's session
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if result is None:
        why = f"killed at the {cap:.0f}s cap" if killed.is_set() else f"exit code {proc.returncode}"
        result = {"status": "error", "error": f"no result ({why})", "output_tail": tail[-15:]}
    return result


def combined_knobs(results: dict) -> tuple[dict | None, list[str]]:
    """Merge the knobs of the COMBINABLE variants that beat COMBINE_BASE in `results`."""
    v = results["variants"]
    base = v.get(COMBINE_BASE, {}).get("tokens_per_s")
    if not base:
        return None, []
    winners = [n for n in COMBINABLE
               if v.get(n, {}).get("status") == "ok" and v[n].get("tokens_per_s", 0) > 1.005 * base]
    if len(winners) < 2:          # one winner is already measured as itself
        return None, winners
    knobs: dict = json.loads(json.dumps(OURS_VARIANTS[COMBINE_BASE]))
    for n in winners:
        for k, val in OURS_VARIANTS[n].items():
            knobs[k] = {**knobs.get(k, {}), **val} if isinstance(val, dict) else val
    return knobs, winners


def summarize(results: dict, cfg: ModelConfig, T: int, peak: float) -> dict:
    v = results["variants"]
    fpt = cfg.flops_per_token(T, 0.15)
    for name, r in v.items():
        if r.get("status") == "ok" and "tokens_per_s" in r:
            r["mfu"] = r["tokens_per_s"] * fpt / peak
            if "tflops" in v.get("matmul_peak", {}):
                r["mfu_vs_measured_peak"] = r["tokens_per_s"] * fpt / (v["matmul_peak"]["tflops"] * 1e12)
    base = v.get("hf_sdpa", {}).get("tokens_per_s")
    ours = {k: r["tokens_per_s"] for k, r in v.items()
            if k.startswith("ours") and r.get("status") == "ok" and "tokens_per_s" in r}
    s = {"flops_per_token": fpt, "peak_flops_ref": peak}
    if ours:
        best = max(ours, key=ours.get)
        s.update(best_ours=best, best_ours_tokens_per_s=ours[best], best_ours_mfu=v[best]["mfu"])
        if base:
            s["speedup_vs_hf_sdpa"] = {k: t / base for k, t in ours.items()}
            s["best_speedup_vs_hf_sdpa"] = ours[best] / base
            s["goal_2_5x_met"] = ours[best] / base >= 2.5
        s["goal_50pct_mfu_met"] = v[best]["mfu"] >= 0.5
    for c in ("check_bf16_vs_fp32", "check_hf_export"):
        if c in v:
            s[f"{c}_pass"] = v[c].get("pass", False)
    return s


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "train_gpu.json"))
    ap.add_argument("--variants", default=None,
                    help=f"comma list from {ALL_VARIANTS + OPTIONAL_VARIANTS}")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, a few steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=420.0, help="total wall budget")
    ap.add_argument("--cap-s", type=float, default=200.0, help="per-variant wall cap")
    ap.add_argument("--min-compile-s", type=float, default=MIN_SECONDS["compile"],
                    help="skip a compiled variant when less of the budget is left")
    ap.add_argument("--peak-tflops", type=float, default=768.0,
                    help="MFU denominator (issue 7: bf16 8192^3 matmul measured on H200)")
    ap.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                    help="one subprocess per variant (default on GPU)")
    ap.add_argument("--no-isolate", dest="isolate", action="store_false")
    ap.add_argument("--profile", nargs="?", const="all", default=None, metavar="VARIANTS",
                    help="after the timed steps: host-phase timers + torch.profiler breakdown "
                         "(variants.<name>.profile) and <out>.<name>.trace.json.gz; for all "
                         "timed variants, or only the comma-listed ones")
    ap.add_argument("--profile-steps", type=int, default=6, help="steps recorded by the profiler")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.smoke:
        args.warmup, args.steps = min(args.warmup, 2), min(args.steps, 3)
        args.profile_steps = min(args.profile_steps, 2)

    if args.child:   # subprocess mode: run one variant, print its JSON on one tagged line
        res = run_variant_safely(args, args.child)
        print(RESULT_TAG + json.dumps(res, default=str), flush=True)
        return res

    t_begin = time.perf_counter()
    names = args.variants.split(",") if args.variants else (SMOKE_VARIANTS if args.smoke else ALL_VARIANTS)
    bad = [n for n in names if n not in ALL_VARIANTS + OPTIONAL_VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {bad}; choose from {ALL_VARIANTS + OPTIONAL_VARIANTS}")
    isolate = args.isolate if args.isolate is not None else (torch.cuda.is_available() and not args.smoke)
    cfg, B, T = shapes(args)
    out = Path(args.out)
    results = {"bench": "train_gpu", "env": environment(args),
               "config": {"model": cfg.to_dict(), "batch": B, "seq": T, "mask_prob": 0.15,
                          "dropout": cfg.dropout, "amp": "bf16" if device_of(args).type == "cuda" else "fp32",
                          "warmup_steps": args.warmup, "timed_steps": args.steps,
                          "isolate": isolate, "profile": args.profile},
               "flops_per_token": cfg.flops_per_token(T, 0.15),
               "flops_per_token_dense_head": cfg.flops_per_token(T, 0.15, dense_head=True),
               "variants": {}}
    log(f"env {results['env']}")
    log(f"model {B}x{T}, FLOPs/token (masked-only head) = {results['flops_per_token'] / 1e6:.1f} M"
        f" (dense head: {results['flops_per_token_dense_head'] / 1e6:.1f} M); MFU ref "
        f"{args.peak_tflops:.0f} TFLOP/s; isolate={isolate}")
    write_json(out, results)
    for name in names:
        remaining = args.budget_s - (time.perf_counter() - t_begin)
        need = args.min_compile_s if "compile" in name else MIN_SECONDS["plain"]
        if args.smoke:
            need = 1
        if remaining < need:
            results["variants"][name] = {"status": "skipped", "error": f"budget: {remaining:.0f}s left"}
            log(f"{name}: skipped ({remaining:.0f}s of budget left)")
            continue
        if name == "ours_combined":
            knobs, winners = combined_knobs(results)
            if knobs is None:
                results["variants"][name] = {"status": "skipped", "error": (
                    f"fewer than two of {COMBINABLE} beat {COMBINE_BASE} (winners: {winners})")}
                log(f"{name}: skipped, winners {winners}")
                continue
            OURS_VARIANTS[name] = knobs
            os.environ["BENCH_EXTRA_VARIANTS"] = json.dumps({name: knobs})
            log(f"{name}: knobs {knobs} from {winners}")
        log(f"{name}: start ({remaining:.0f}s of budget left)")
        res = run_child(args, name, remaining) if isolate else run_variant_safely(args, name)
        results["variants"][name] = res
        results["summary"] = summarize(results, cfg, T, args.peak_tflops * 1e12)
        write_json(out, results)
        brief = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()
                 if k not in ("traceback", "output_tail", "loss_first_last", "profile")}
        if "mfu" in res:
            brief["mfu"] = round(res["mfu"], 3)
        log(f"{name}: {brief}")
        if res.get("status") == "error":
            log(f"{name}: ERROR {res.get('error')}\n{res.get('traceback', '')[-1500:]}")
    results["summary"] = summarize(results, cfg, T, args.peak_tflops * 1e12)
    results["total_wall_s"] = time.perf_counter() - t_begin
    write_json(out, results)
    s = results["summary"]
    log("=" * 70)
    base = results["variants"].get("hf_sdpa", {}).get("tokens_per_s")
    for name, r in results["variants"].items():
        if "tokens_per_s" in r:
            ratio = f"{r['tokens_per_s'] / base:5.2f}x HF-sdpa" if base else ""
            log(f"{name:26s} {r['tokens_per_s']:12,.0f} tok/s  MFU {r.get('mfu', 0):6.1%}  {ratio}")
        elif r.get("status") != "ok" or name.startswith("check") or name == "matmul_peak":
            keys = ("pass", "max_abs_diff", "loss_rel_err", "grad_rel_err_global",
                    "grad_rel_err_max_tensor", "tflops", "status", "error")
            log(f"{name:26s} " + ", ".join(f"{k}={r[k]}" for k in keys if k in r))
    if args.profile:
        log("-" * 70 + " profile (ms per step)")
        for name, r in results["variants"].items():
            if "profile" in r:
                for line in format_profile(name, r["profile"]):
                    log(line)
    log(f"summary: {json.dumps(s, default=str)}")
    log(f"wrote {out} in {results['total_wall_s']:.0f}s")
    return results


if __name__ == "__main__":
    main()
