"""Training checkpoints: everything a run needs to continue on the same trajectory.

Layout (`<root>/pretrain/<run>/checkpoints/step-<N>/`, N zero-padded to 8 digits; the same
under the in-process loop and under Ray Train, which merges every rank's files into one
directory):

    model.safetensors, config.json     Hugging Face layout (`AutoModelForMaskedLM` loads it)
    tokenizer.json, vocab.json, ...    the run's tokenizer files (HF layout)
    optimizer.pt                       AdamW state (torch.save; loaded with weights_only=True)
    scheduler.pt                       LR scheduler state (same)
    trainer_state.json                 step, iteration, TrainStep counters, world size, tokens
    pretrain_config.json               the PretrainConfig of the run
    metrics.jsonl                      per-step metrics up to this step
    rank-<r>.pt                        per rank: data-reader position and RNG states
                                       (torch, CUDA, numpy, python)
    checkpoint.json                    written last by rank 0: format version, step, world
                                       size, the files above with each one's size and sha256,
                                       and for a run started from another checkpoint
                                       (`--init-from`) `init_from`: its directory and sha256

Atomicity: the in-process `LocalCheckpointer` writes into `.tmp-step-<N>` and renames it (a
step directory either is complete or does not exist); under Ray Train a checkpoint is
registered only once every rank's files are persisted, and restores use Ray's record.
Weights are stored only once, in the HF file, and restored from it exactly (float32).

Integrity: `restore` checks every file against the sizes and sha256 digests in the manifest
(checkpoints from before digests were recorded: presence only) and reports a bad file as a
`CheckpointError` naming it; `restore_latest` then falls back to the next-newest checkpoint.
Finding, listing and verifying checkpoints needs no torch: training/run_checkpoints.py.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from runroot import layout, storage
from training.hf_io import export_hf, from_hf_state_dict, read_hf_weights
from training.run_checkpoints import (FORMAT_VERSION, INIT_FROM, MANIFEST, CheckpointError,
                                      file_digest, latest_checkpoint, list_checkpoints, load_file,
                                      read_json, read_manifest, step_dirs, step_dir_name,
                                      verify_checkpoint)

def rank_file(rank: int) -> str:
    return f"rank-{rank:05d}.pt"


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


def _barrier() -> None:
    if _dist_ready() and dist.get_world_size() > 1:
        dist.barrier()


def _write_json(path: Path, obj) -> None:
    """Indented, keys in the order given (the format checkpoints have always had)."""
    storage.save_json(path, obj, sort_keys=False, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# --------------------------------------------------------------------------------------------
# RNG state (weights_only-loadable: tensors, ints, strings, lists/tuples/dicts of them)
# --------------------------------------------------------------------------------------------

def rng_state() -> dict:
    np_state = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(np_state["state"]["key"]).astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "python": list(random.getstate()[1]),
        "python_version": int(random.getstate()[0]),
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# write / read one checkpoint directory
# --------------------------------------------------------------------------------------------

def write_checkpoint(directory: str | os.PathLike, *, rank: int, world_size: int, model,
                     optimizer, scheduler, trainer_state: dict, reader_state: dict,
                     config: dict, metrics: list[dict],
                     tokenizer_dir: str | os.PathLike | None,
                     init_from: dict | None = None) -> None:
    """Write this rank's share of a checkpoint into `directory` (which exists).

    Rank 0 writes the model (HF layout), optimizer, scheduler, counters, config, metrics and
    the manifest (with `init_from`, where the run's weights started, when given); every rank
    writes its own `rank-<r>.pt` (data position, RNG)."""
    d = Path(directory)
    torch.save({"reader": reader_state, "rng": rng_state(), "rank": rank,
                "world_size": world_size}, d / rank_file(rank))
    # Each rank digests its own file for rank 0's manifest: under Ray Train the ranks write
    # into separate directories, so rank 0 cannot read the others' files.
    digests = _all_ranks({rank_file(rank): file_digest(d / rank_file(rank))}, world_size)
    if rank != 0:
        return
    tok = tokenizer_dir if tokenizer_dir is not None and Path(tokenizer_dir).is_dir() else None
    export_hf(model, d, tokenizer_dir=tok, metadata={"step": str(trainer_state["step"])})
    torch.save(optimizer.state_dict(), d / "optimizer.pt")
    torch.save(scheduler.state_dict(), d / "scheduler.pt")
    _write_json(d / "trainer_state.json", {**trainer_state, "world_size": world_size})
    _write_json(d / "pretrain_config.json", config)
    storage.save_text(d / layout.METRICS,
                      "".join(json.dumps(m, default=_json_default) + "\n" for m in metrics))
    for p in d.iterdir():
        if p.is_file() and p.name not in digests:
            digests[p.name] = file_digest(p)
    files = sorted(set(digests) | {rank_file(r) for r in range(world_size)})
    started = {INIT_FROM: init_from} if init_from else {}
    _write_json(d / MANIFEST, {"format_version": FORMAT_VERSION, "step": trainer_state["step"],
                               "world_size": world_size, "files": files + [MANIFEST],
                               "digests": digests, **started})


def _all_ranks(mine: dict, world_size: int) -> dict:
    """The union of every rank's `mine` (all ranks must call this together)."""
    if world_size == 1 or not _dist_ready():
        return dict(mine)
    parts: list = [None] * world_size
    dist.all_gather_object(parts, mine)
    return {k: v for part in parts for k, v in part.items()}


def _read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_model_weights(directory: str | os.PathLike, model) -> None:
    """Restore our model's parameters from the checkpoint's HF `model.safetensors`."""
    weights = load_file(Path(directory) / "model.safetensors", lambda p: read_hf_weights(p.parent))
    sd, _ = from_hf_state_dict(weights, model.cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{directory}: checkpoint does not fit the model: missing {missing}, "
                         f"unexpected {unexpected}")


def read_checkpoint(directory: str | os.PathLike, *, rank: int, world_size: int,
                    map_location="cpu") -> dict:
    """Everything stored for `rank`: {"trainer", "config", "metrics", "optimizer",
    "scheduler", "reader", "rng"} (the model is restored with `load_model_weights`)."""
    d = Path(directory)
    manifest = read_manifest(d)
    if manifest["world_size"] != world_size:
        raise ValueError(f"{d}: written by {manifest['world_size']} workers, resuming with "
                         f"{world_size}: the data positions are per rank; resume with the "
                         f"same number of workers")
    verify_checkpoint(d)
    per_rank = load_file(d / rank_file(rank), torch.load, map_location="cpu", weights_only=True)
    metrics = []
    if (d / layout.METRICS).is_file():
        metrics = load_file(d / layout.METRICS, _read_jsonl)
    return {
        "manifest": manifest,
        "trainer": load_file(d / "trainer_state.json", read_json),
        "config": load_file(d / "pretrain_config.json", read_json),
        "metrics": metrics,
        "optimizer": load_file(d / "optimizer.pt", torch.load, map_location=map_location,
                           weights_only=True),
        "scheduler": load_file(d / "scheduler.pt", torch.load, map_location="cpu",
                           weights_only=True),
        "reader": per_rank["reader"],
        "rng": per_rank["rng"],
    }


def restore(directory: str | os.PathLike, model, *, rank: int, world_size: int,
            map_location="cpu") -> dict:
    """`read_checkpoint` (verified) and the weights loaded into `model`."""
    state = read_checkpoint(directory, rank=rank, world_size=world_size,
                            map_location=map_location)
    load_model_weights(directory, model)
    return state


def restore_latest(run_dir: str | os.PathLike, model, *, rank: int, world_size: int,
                   map_location="cpu") -> tuple[Path, dict] | None:
    """`restore` from the newest checkpoint of the run that verifies and loads, warning about
    each newer one skipped (named file, reason). None: the run has no checkpoint; all of
    them bad: CheckpointError (never a silent fresh start over a run's history)."""
    bad = []
    for _, d in reversed(step_dirs(run_dir)):
        try:
            return d, restore(d, model, rank=rank, world_size=world_size,
                              map_location=map_location)
        except (CheckpointError, FileNotFoundError) as exc:
            bad.append(str(exc))
            warnings.warn(f"not resuming from {d.name}: {exc}; trying the previous checkpoint",
                          stacklevel=2)
    if bad:
        raise CheckpointError(f"{run_dir}: no checkpoint can be resumed: " + "; ".join(bad))
    return None


WriteFn = Callable[[Path], None]


class LocalCheckpointer:
    """Checkpoints on a local or shared filesystem, for the in-process loop (one process, or
    torchrun-style ranks sharing the filesystem). Atomic: temp directory, then rename; keeps
    the last `keep_last` complete checkpoints."""

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 3):
        self.run_dir = Path(run_dir)
        self.keep_last = keep_last

    def save(self, step: int, write: WriteFn, metrics: dict | None = None) -> Path:
        rank = dist.get_rank() if _dist_ready() else 0
        base = self.run_dir / layout.CHECKPOINTS
        final = base / step_dir_name(step)
        # Not storage.atomic_output: its temporary belongs to one writer process (named after
        # its pid), while here every rank writes its files into one temporary directory that
        # rank 0 creates and renames, with barriers between the steps.
        tmp = base / f".tmp-{step_dir_name(step)}"
        if rank == 0:
            base.mkdir(parents=True, exist_ok=True)
            if tmp.exists():                 # left by a run killed while writing
                shutil.rmtree(tmp)
            tmp.mkdir()
        _barrier()
        write(tmp)
        _barrier()
        if rank == 0:
            if final.exists():               # same step written by an earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
            self.prune()
        _barrier()
        return final

    def prune(self) -> None:
        if self.keep_last and self.keep_last > 0:
            for _, p in list_checkpoints(self.run_dir)[:-self.keep_last]:
                shutil.rmtree(p, ignore_errors=True)

    def latest(self) -> Path | None:
        return latest_checkpoint(self.run_dir)


__all__ = ["INIT_FROM", "LocalCheckpointer", "write_checkpoint", "read_checkpoint",
           "load_model_weights", "restore", "restore_latest", "rank_file", "rng_state", "set_rng_state"]
