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
  ours_compile_cudagraphs  ... torch.compile(mode="reduce-overhead") (CUDA graphs)
  ours_compile_cudnn_attn  ... torch.compile, SDPA restricted to the cuDNN attention backend
  ours_compile_autotune    ... torch.compile(mode="max-autotune-no-cudagraphs")
  hf_eager                 RobertaForMaskedLM, eager attention
Throughput: batch 64 x 512, 15% masked, dropout 0.1, bf16 autocast, fused AdamW, ~10 warm-up
+ 20 timed steps; every step ends with a host sync on the loss (as a training loop that logs
does). MFU = tokens/s x FLOPs/token / 768e12 (the issue's measured bf16 peak on H200); the
FLOPs/token are computed from the config (601 MFLOP at base shapes: head on masked tokens).

    python bench/bench_train_gpu.py --out $OUT/gpu.json             # everything, ~6-7 min
    python bench/bench_train_gpu.py --variants hf_sdpa,ours_compile --out ...
    python bench/bench_train_gpu.py --smoke                          # CPU, tiny, seconds
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
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
from training.step import TrainStep, autocast_for, batch_to_device  # noqa: E402

# In priority order: the budget runs out at the end of this list, not the start.
ALL_VARIANTS = ["matmul_peak", "check_bf16_vs_fp32", "check_hf_export", "hf_sdpa", "ours_compile",
                "ours_eager", "hf_sdpa_compile", "ours_compile_cudagraphs",
                "ours_compile_cudnn_attn", "ours_compile_autotune", "hf_eager"]
SMOKE_VARIANTS = ["matmul_peak", "check_bf16_vs_fp32", "check_hf_export", "hf_sdpa",
                  "ours_eager", "hf_eager"]
COMPILE_MODES = {"ours_compile": {}, "ours_compile_cudagraphs": {"mode": "reduce-overhead"},
                 "ours_compile_cudnn_attn": {},
                 "ours_compile_autotune": {"mode": "max-autotune-no-cudagraphs"},
                 "hf_sdpa_compile": {}}
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
    """Masks batches in a background thread (as a data-loader worker would) and hands out
    pinned tensors; block indices keep increasing so every batch gets fresh masks."""

    def __init__(self, cfg: ModelConfig, B: int, T: int, device, dense_labels: bool, depth: int = 4):
        self.blocks = random_blocks(B * 16, T, cfg)
        self.masker = Masker(MaskingConfig.for_model(cfg), seed=0, pad_id=cfg.pad_id)
        self.B, self.device, self.dense = B, device, dense_labels
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.mask_seconds = 0.0
        self.masked_batches = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run_guarded, daemon=True)
        self.thread.start()

    def _run_guarded(self):
        try:
            self._run()
        except BaseException as e:  # surfaced by get(), not lost in a thread
            self.error = e

    def _run(self):
        i = 0
        n = len(self.blocks) // self.B
        while not self.stop.is_set():
            j = i % n
            t0 = time.perf_counter()
            b = self.masker(self.blocks[j * self.B:(j + 1) * self.B],
                            np.arange(i * self.B, (i + 1) * self.B), epoch=0)
            if self.dense:
                b = {"input_ids": b["input_ids"], "labels": labels_from_batch(b),
                     "num_masked": b["num_masked"], "num_tokens": b["num_tokens"]}
            out = {}
            for k, v in b.items():
                if isinstance(v, np.ndarray):
                    t = torch.from_numpy(v)
                    out[k] = t.pin_memory() if self.device.type == "cuda" else t
                else:
                    out[k] = v
            self.mask_seconds += time.perf_counter() - t0
            self.masked_batches += 1
            while not self.stop.is_set():
                try:
                    self.q.put(out, timeout=0.1)
                    break
                except queue.Full:
                    continue
            i += 1

    def get(self) -> dict:
        while True:
            try:
                return self.q.get(timeout=1.0)
            except queue.Empty:
                if self.error is not None:
                    raise RuntimeError(f"batch feeder failed: {self.error!r}") from self.error
                if not self.thread.is_alive():
                    raise RuntimeError("batch feeder thread died")

    def close(self):
        self.stop.set()


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


def _timed_loop(step_fn, feeder, device, warmup: int, steps: int, cap_s: float, t_start: float) -> dict:
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
        loss, ntok = step_fn(feeder.get())
        losses.append(loss)
        tokens += ntok
        done += 1
        if time.perf_counter() - t_start > cap_s * 0.95:
            break
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


def run_ours(args, name: str) -> dict:
    device = device_of(args)
    cfg, B, T = shapes(args)
    set_precision(fast=True)
    t_start = time.perf_counter()
    model = build_model(cfg, device=device, seed=0)
    ocfg = OptimConfig.named("base", warmup_steps=100)
    opt = build_optimizer(model, ocfg)
    compile_kw = COMPILE_MODES.get(name, False)
    step = TrainStep(model, opt, build_scheduler(opt, ocfg),
                     compile=(compile_kw if name in COMPILE_MODES else False))
    feeder = BatchFeeder(cfg, B, T, device, dense_labels=False)
    attn_ctx = contextlib.nullcontext
    if name == "ours_compile_cudnn_attn":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        attn_ctx = lambda: sdpa_kernel([SDPBackend.CUDNN_ATTENTION])  # noqa: E731

    def step_fn(batch):
        with attn_ctx():
            m = step([batch])
        return m.loss, m.tokens
    try:
        res = _timed_loop(step_fn, feeder, device, args.warmup, args.steps, args.cap_s, t_start)
    finally:
        feeder.close()
    res["fused_adamw"] = bool(opt.defaults.get("fused"))
    res["compile"] = compile_kw if name in COMPILE_MODES else None
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
        return float(loss.detach()), batch["num_tokens"]
    try:
        res = _timed_loop(step_fn, feeder, device, args.warmup, args.steps, args.cap_s, t_start)
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
    if name.startswith("ours"):
        return run_ours(args, name)
    if name.startswith("hf"):
        return run_hf(args, name)
    raise ValueError(f"unknown variant {name!r}; choose from {ALL_VARIANTS}")


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
           "--batch", str(args.batch), "--seq", str(args.seq)] + (["--smoke"] if args.smoke else [])
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
    ap.add_argument("--variants", default=None, help=f"comma list from {ALL_VARIANTS}")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, a few steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=420.0, help="total wall budget")
    ap.add_argument("--cap-s", type=float, default=200.0, help="per-variant wall cap")
    ap.add_argument("--peak-tflops", type=float, default=768.0,
                    help="MFU denominator (issue 7: bf16 8192^3 matmul measured on H200)")
    ap.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                    help="one subprocess per variant (default on GPU)")
    ap.add_argument("--no-isolate", dest="isolate", action="store_false")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.smoke:
        args.warmup, args.steps = min(args.warmup, 2), min(args.steps, 3)

    if args.child:   # subprocess mode: run one variant, print its JSON on one tagged line
        res = run_variant_safely(args, args.child)
        print(RESULT_TAG + json.dumps(res, default=str), flush=True)
        return res

    t_begin = time.perf_counter()
    names = args.variants.split(",") if args.variants else (SMOKE_VARIANTS if args.smoke else ALL_VARIANTS)
    bad = [n for n in names if n not in ALL_VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {bad}; choose from {ALL_VARIANTS}")
    isolate = args.isolate if args.isolate is not None else (torch.cuda.is_available() and not args.smoke)
    cfg, B, T = shapes(args)
    out = Path(args.out)
    results = {"bench": "train_gpu", "env": environment(args),
               "config": {"model": cfg.to_dict(), "batch": B, "seq": T, "mask_prob": 0.15,
                          "dropout": cfg.dropout, "amp": "bf16" if device_of(args).type == "cuda" else "fp32",
                          "warmup_steps": args.warmup, "timed_steps": args.steps,
                          "isolate": isolate},
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
        need = MIN_SECONDS["compile" if "compile" in name else "plain"]
        if args.smoke:
            need = 1
        if remaining < need:
            results["variants"][name] = {"status": "skipped", "error": f"budget: {remaining:.0f}s left"}
            log(f"{name}: skipped ({remaining:.0f}s of budget left)")
            continue
        log(f"{name}: start ({remaining:.0f}s of budget left)")
        res = run_child(args, name, remaining) if isolate else run_variant_safely(args, name)
        results["variants"][name] = res
        results["summary"] = summarize(results, cfg, T, args.peak_tflops * 1e12)
        write_json(out, results)
        brief = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()
                 if k not in ("traceback", "output_tail", "loss_first_last")}
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
    log(f"summary: {json.dumps(s, default=str)}")
    log(f"wrote {out} in {results['total_wall_s']:.0f}s")
    return results


if __name__ == "__main__":
    main()
