"""The real `pretrain` loop (`training.loop.train`) on one GPU, where the step benchmark
(`bench_train_gpu.py`) measures `TrainStep` alone: the shard reader, the masking thread with
pinned batches, pipelined updates, checkpoints and a resume, all as `roberta pretrain` runs them.

Writes random-token shards (roberta-base vocabulary, full 512-token blocks) under a temporary
root, trains `--stop-after` updates, then resumes from the checkpoint to `--steps`, and reports
the loop's own per-update tokens/s and MFU (the same 601.5 MFLOP/token and 768 TFLOP/s as the
step benchmark, so the two figures compare), the time lost at the checkpoint and at the resume,
and whether every update ran once. Needs only torch, numpy and pyarrow (the GPU image).

    python bench/gpu_loop_check.py --out $OUT/loop.json       # device machine, ~3 min
    python bench/gpu_loop_check.py --smoke                    # CPU, tiny, seconds (CI)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.loop import train  # noqa: E402
from training.metrics_log import read_metrics  # noqa: E402
from training.pretrain_config import PretrainConfig  # noqa: E402

VOCAB, MASK_ID = 50265, 50264
ISSUE_PEAK = 768e12      # issue 7's measured bf16 matmul peak on H200 (the step bench's MFU)


def write_random_shards(root: Path, blocks: dict[str, int], T: int, seed: int = 0) -> None:
    """Shards in shard-corpus's layout: <s> random ids </s>, no padding (FULL-SENTENCES
    blocks are full); random ids keep the loss near ln(vocab), which is all a speed run needs."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in blocks.items():
        ids = rng.integers(5, MASK_ID, size=(n, T), dtype=np.uint16)
        ids[:, 0], ids[:, -1] = 0, 2
        table = pa.table({
            "block_index": pa.array(np.arange(n, dtype=np.int64)),
            "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), T),
            "length": pa.array(np.full(n, T, dtype=np.int32))})
        rel = f"{split}/part-00000.parquet"
        (root / "shards" / split).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "shards" / rel, row_group_size=1024, compression="zstd")
        splits[split] = {"blocks": n, "files": [
            {"path": rel, "blocks": n, "block_index_start": 0,
             "bytes": (root / "shards" / rel).stat().st_size}]}
    manifest = {"version": 1, "format": "full-sentences", "block_size": T, "dtype": "uint16",
                "pad_id": 1, "bos_id": 0, "eos_id": 2, "unk_id": 3, "mask_id": MASK_ID,
                "vocab_size": VOCAB, "static_masks": 0, "splits": splits}
    (root / "shards" / "manifest.json").write_text(json.dumps(manifest))


def steady(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="base")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--micro-batch-size", type=int, default=64)
    p.add_argument("--block-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=70)
    p.add_argument("--stop-after", type=int, default=40, help="checkpoint and stop here first")
    p.add_argument("--warmup", type=int, default=10, help="updates left out of the medians "
                   "after each start (compilation, CUDA-graph recording)")
    p.add_argument("--compile", default="auto")
    p.add_argument("--out", default="bench/out/gpu_loop_check.json")
    p.add_argument("--smoke", action="store_true", help="tiny model on the CPU (a CI check)")
    args = p.parse_args()
    if args.smoke:
        args.config, args.batch_size, args.micro_batch_size, args.block_size = "tiny", 4, 2, 64
        args.steps, args.stop_after, args.warmup = 6, 3, 1
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    per_update = args.batch_size * args.block_size

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # enough blocks that neither phase wraps an epoch
        write_random_shards(root, {"train": args.batch_size * (args.steps + 1),
                                   "valid": 2 * args.micro_batch_size}, args.block_size)
        cfg = PretrainConfig(root=str(root), run="loop", model=args.config,
                             batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
                             steps=args.steps, checkpoint_every=args.stop_after, keep_last=2,
                             valid_every=0, valid_batches=1, compile=args.compile,
                             device=device, peak_flops=ISSUE_PEAK if device == "cuda" else None)
        phases = []
        for name, kw in (("first", {"stop_after": args.stop_after}),
                         ("resumed", {"resume_from": "latest"})):
            t0 = time.perf_counter()
            summary = train(cfg, **kw)
            phases.append({"phase": name, "wall_s": time.perf_counter() - t0,
                           "steps_done": summary["steps"], "skipped": summary["skipped_total"]})
        metrics = read_metrics(cfg.run_dir)

    steps = [m["step"] for m in metrics]
    timed = [m for m in metrics
             if args.warmup < m["step"] <= args.stop_after
             or m["step"] > args.stop_after + args.warmup]
    tps = [m["tokens_per_s"] for m in timed]
    mfu = [m["mfu"] for m in timed if m.get("mfu") is not None]
    median_step_s = steady([m["step_time_s"] for m in timed])
    # Checkpoint stall: the update after the checkpoint (written at stop_after... the first
    # phase ends there) is not measured; within a phase, steps at checkpoint_every multiples are.
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__, "config": args.config, "batch": args.batch_size,
        "micro_batch": args.micro_batch_size, "block_size": args.block_size,
        "compile": args.compile, "phases": phases,
        "every_update_once": steps == list(range(1, args.steps + 1)),
        "losses_finite": all(np.isfinite(m["loss"]) for m in metrics),
        "loss_first_last": [metrics[0]["loss"], metrics[-1]["loss"]] if metrics else None,
        "median_tokens_per_s": steady(tps), "median_mfu_vs_768T": steady(mfu),
        "median_step_ms": 1000 * median_step_s if median_step_s else None,
        "tokens_per_update": per_update, "timed_updates": len(timed),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = result["every_update_once"] and result["losses_finite"] and all(
        ph["skipped"] == 0 for ph in phases)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
