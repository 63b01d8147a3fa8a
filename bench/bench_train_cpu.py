"""CPU training throughput: our real step vs transformers' RobertaForMaskedLM (sdpa), one run.

Shapes (issue 4): hidden 256, 4 layers, 4 heads, FFN 1024, vocab 50,265, seq 128, batch 16,
float32, dropout 0.1, the same AdamW (0.9, 0.98, 1e-6, wd 0.01; fused) on both sides. Both sides train on the same blocks with
the same masks. The batches are masked before timing, as a data-loader worker does in real
training, so neither step pays for masking (until 2026-11-27 both masked inside the timed step,
a constant added to both sides); ours takes the batch dicts, HF the equivalent dense `labels`.
Steps alternate between the two so drift in the machine's speed hits both alike. Goal: ours >=
3x HF tokens/s.

The ratio depends on the allocator: with glibc's default, every tensor over 32 MB is a fresh
mmap whose pages fault in on first write, which costs HF (~1.7 GB of fresh logits-sized
buffers per step) far more than us. Environment variables that change this (MALLOC_*,
GLIBC_TUNABLES, LD_PRELOAD of jemalloc/tcmalloc, THP_MEM_ALLOC_ENABLE) are recorded in the JSON.

    python bench/bench_train_cpu.py [--steps 8] [--rounds 3] [--no-compile] [--threads N] [--out F]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.config import MaskingConfig, ModelConfig, OptimConfig  # noqa: E402
from training.masking import Masker, labels_from_batch  # noqa: E402
from training.model import build_model  # noqa: E402
from training.optim import build_optimizer, build_scheduler  # noqa: E402
from training.step import TrainStep  # noqa: E402


def random_blocks(n: int, T: int, vocab: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = rng.integers(4, vocab - 1, size=(n, T), dtype=np.int64)
    b[:, 0], b[:, -1] = 0, 2
    return b


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per side per round (interleaved)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="also time our step with torch.compile (CPU inductor; ~1 min compile)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "train_cpu.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import transformers

    cfg = ModelConfig(num_layers=4, hidden_size=256, num_heads=4, ffn_size=1024, vocab_size=50265,
                      max_positions=512)
    ocfg = OptimConfig(peak_lr=5e-4, warmup_steps=100, total_steps=10_000)
    B, T = args.batch, args.seq

    # Batches masked up front (a loader worker's job, off the training thread); every side
    # cycles through the same ones.
    masker = Masker(MaskingConfig.for_model(cfg), seed=0)
    n_blocks = B * 32
    blocks = random_blocks(n_blocks, T, cfg.vocab_size, seed=1)
    batches = [masker(blocks[i:i + B], np.arange(i, i + B), epoch=0)
               for i in range(0, n_blocks, B)]
    hf_batches = [(torch.from_numpy(b["input_ids"]), torch.from_numpy(labels_from_batch(b)))
                  for b in batches]
    cursor: dict[str, int] = {}

    def next_index(who):
        cursor[who] = cursor.get(who, -1) + 1
        return cursor[who] % len(batches)

    # ours: model + optimizer/schedule + TrainStep (float32 on CPU); one model per side so
    # that eager and compiled do not share optimizer state.
    def make_ours(name, compile_kw):
        model = build_model(cfg, seed=0)
        opt = build_optimizer(model, ocfg)
        step = TrainStep(model, opt, build_scheduler(opt, ocfg), compile=compile_kw)
        return lambda: step([batches[next_index(name)]])

    hcfg = transformers.RobertaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.ffn_size,
        max_position_embeddings=cfg.num_position_rows, type_vocab_size=1, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    hf = transformers.AutoModelForMaskedLM.from_config(hcfg, attn_implementation="sdpa").train()
    hopt = build_optimizer(hf, ocfg)      # the same AdamW (fused on CPU too) for both sides
    hsched = build_scheduler(hopt, ocfg)

    def hf_step():
        input_ids, labels = hf_batches[next_index("hf_sdpa")]
        out = hf(input_ids=input_ids, labels=labels)
        out.loss.backward()
        hopt.step()
        hsched.step()
        hopt.zero_grad(set_to_none=True)

    sides = {"ours": make_ours("ours", False), "hf_sdpa": hf_step}
    if args.compile:
        sides["ours_compile"] = make_ours("ours_compile", True)
    compile_s = None
    for w in range(args.warmup):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            if w == 0 and name == "ours_compile":
                compile_s = time.perf_counter() - t0
                print(f"ours_compile: first step (compile) {compile_s:.0f}s", flush=True)
    # Steps alternate one by one (ours, HF, ours, HF, ...) so that a busy shared machine slows
    # every side alike; the ratio of medians is reported next to the ratio of totals.
    step_times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for _ in range(args.steps):
            for name, fn in sides.items():
                t0 = time.perf_counter()
                fn()
                step_times[name].append(time.perf_counter() - t0)
        print(f"round {r}: " + "  ".join(
            f"{k} {B * T * args.steps / sum(v[-args.steps:]):,.0f} tok/s" for k, v in step_times.items()),
            flush=True)
    times = {k: sum(v) for k, v in step_times.items()}
    tokens = B * T * args.steps * args.rounds
    result = {
        "bench": "train_cpu",
        "shapes": {"hidden": 256, "layers": 4, "heads": 4, "ffn": 1024, "vocab": 50265,
                   "seq": T, "batch": B, "dtype": "float32"},
        "torch": torch.__version__, "transformers": transformers.__version__,
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "allocator_env": {k: v for k, v in os.environ.items()
                          if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "LD_PRELOAD",
                                                              "THP_MEM_ALLOC_ENABLE")},
        "tokens_per_s": {k: tokens / v for k, v in times.items()},
        "steps_timed": args.steps * args.rounds,
        "median_step_s": {k: float(np.median(v)) for k, v in step_times.items()},
    }
    result["compile_s"] = compile_s
    tps, med = result["tokens_per_s"], result["median_step_s"]
    result["speedup_vs_hf_sdpa"] = {k: tps[k] / tps["hf_sdpa"] for k in tps if k != "hf_sdpa"}
    result["speedup_of_medians"] = {k: med["hf_sdpa"] / med[k] for k in med if k != "hf_sdpa"}
    for k in result["speedup_vs_hf_sdpa"]:
        print(f"{k:13s} {tps[k]:8,.0f} tok/s | HF sdpa {tps['hf_sdpa']:8,.0f} tok/s | speed-up "
              f"{result['speedup_vs_hf_sdpa'][k]:.2f}x, of median steps "
              f"{result['speedup_of_medians'][k]:.2f}x (goal >= 3x)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
