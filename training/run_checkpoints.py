"""Finding checkpoints under a run root, and telling model directories apart.

`checkpoint_dirs(root)` lists the complete checkpoints of every pretraining run under
`<root>/pretrain`, oldest first; `finished_checkpoint` says whether a run reached its last
update. `model_name` and `checkpoint_fingerprint` identify a model directory (ours or any HF
RoBERTa directory) in the results table and the finetuning job cache.
"""
from __future__ import annotations

import os
from pathlib import Path

from runroot import layout
from training.checkpoint import list_checkpoints

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def checkpoint_dirs(root: str | os.PathLike) -> list[Path]:
    """Complete pretrain checkpoints of every run under `<root>/pretrain`, oldest first."""
    base = Path(root) / layout.PRETRAIN
    runs = [d for d in base.iterdir() if d.is_dir()] if base.is_dir() else []
    found = [ck for run in runs for _, ck in list_checkpoints(run)]
    return sorted(found, key=lambda d: ((d / "model.safetensors").stat().st_mtime_ns, str(d)))


def newest_checkpoint(root: str | os.PathLike) -> Path:
    found = checkpoint_dirs(root)
    if not found:
        raise FileNotFoundError(f"no pretrain checkpoint under {Path(root) / layout.PRETRAIN}: "
                                "run pretrain first, or pass --checkpoint DIR (any HF RoBERTa dir)")
    return found[-1]


def finished_checkpoint(run_dir: str | os.PathLike, steps: int) -> Path | None:
    """The run's last checkpoint if it reached update `steps`, else None."""
    checkpoints = list_checkpoints(Path(run_dir))
    if checkpoints and checkpoints[-1][0] >= steps:
        return checkpoints[-1][1]
    return None


def model_name(model_dir: Path) -> str:
    """`<run>` for `<root>/pretrain/<run>/.../step-N`, else the directory's own name."""
    parts = Path(model_dir).resolve().parts
    if layout.PRETRAIN in parts and parts.index(layout.PRETRAIN) + 1 < len(parts):
        return parts[parts.index(layout.PRETRAIN) + 1]
    return Path(model_dir).name


def checkpoint_fingerprint(model_dir: str | os.PathLike) -> str:
    """Path, size and mtime of the weights file: checkpoints are written once, atomically."""
    d = Path(model_dir).resolve()
    for name in WEIGHT_FILES:
        if (d / name).exists():
            st = (d / name).stat()
            return f"{d}:{st.st_size}:{st.st_mtime_ns}"
    raise FileNotFoundError(f"no model weights ({' or '.join(WEIGHT_FILES)}) in {d}")


__all__ = ["WEIGHT_FILES", "checkpoint_dirs", "newest_checkpoint", "finished_checkpoint",
           "model_name", "checkpoint_fingerprint"]
