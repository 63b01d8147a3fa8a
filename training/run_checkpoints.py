"""Finding and checking checkpoints, without torch: what the CLI's pre-check, the Ray driver
and finetune-eval need before (or without) loading a model.

A checkpoint is `<run_dir>/checkpoints/step-<N>/` (see training/checkpoint.py for its files),
complete once `checkpoint.json` is there with every file it lists; the manifest records each
file's size and sha256, which `verify_checkpoint` checks. Above one run: `checkpoint_dirs`
lists every run's complete checkpoints under `<root>/pretrain`, `finished_checkpoint` says
whether a run reached its last update, `refuse_existing_run` keeps a new run off an old one's
directory, and `model_name`/`checkpoint_fingerprint` identify a model directory (ours or any
HF RoBERTa directory) in the results table and the finetuning job cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable

from runroot import layout

FORMAT_VERSION = 1
MANIFEST = "checkpoint.json"
INIT_FROM = "init_from"      # the manifest's record of where a continued run started
RAY_TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"   # Ray Train's record of a run
_STEP_RE = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or unreadable; the message names the file."""


class RunExistsError(FileExistsError):
    """A fresh run was asked for but the run directory already holds one."""


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


# --------------------------------------------------------------------------------------------
# one checkpoint: its manifest and files
# --------------------------------------------------------------------------------------------

def load_file(path: Path, load: Callable, **kw):
    """load(path, **kw), any failure raised as a CheckpointError naming the file (torch,
    safetensors and json raise many different types for a damaged file)."""
    try:
        return load(path, **kw)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def read_json(path: Path):
    return json.loads(path.read_text())


def file_digest(path: Path) -> dict:
    """{"size", "sha256"} of a file just written (read back from the page cache: about a
    second per GB, and checkpoints are infrequent)."""
    with open(path, "rb") as f:
        return {"size": os.fstat(f.fileno()).st_size,
                "sha256": hashlib.file_digest(f, "sha256").hexdigest()}


def read_manifest(directory: str | os.PathLike) -> dict:
    p = Path(directory) / MANIFEST
    if not p.is_file():
        raise FileNotFoundError(f"{directory}: not a complete checkpoint (no {MANIFEST})")
    m = load_file(p, read_json)
    if not (isinstance(m, dict) and isinstance(m.get("files"), list) and "world_size" in m
            and isinstance(m.get("digests", {}), dict)):
        raise CheckpointError(f"{p}: damaged: not a checkpoint manifest")
    return m


def is_complete(directory: str | os.PathLike) -> bool:
    try:
        m = read_manifest(directory)
    except (FileNotFoundError, CheckpointError):
        return False
    return all((Path(directory) / f).is_file() for f in m["files"])


def verify_checkpoint(directory: str | os.PathLike) -> dict:
    """The manifest, once every file it lists is there with the recorded size and sha256;
    else CheckpointError naming the first bad file."""
    d = Path(directory)
    m = read_manifest(d)
    for name in m["files"]:
        p, want = d / name, m.get("digests", {}).get(name)
        if not p.is_file():
            raise CheckpointError(f"{p}: missing (listed in {MANIFEST})")
        if want is None:               # the manifest itself, or written before digests
            continue
        got = file_digest(p)
        if got["size"] != want["size"]:
            raise CheckpointError(f"{p}: {got['size']} bytes, {MANIFEST} recorded "
                                  f"{want['size']} (truncated or overwritten)")
        if got["sha256"] != want["sha256"]:
            raise CheckpointError(f"{p}: sha256 differs from the one in {MANIFEST} (damaged)")
    return m


# --------------------------------------------------------------------------------------------
# the checkpoints of a run
# --------------------------------------------------------------------------------------------

def step_dirs(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Every `step-<N>` directory of a run, complete or not, oldest first."""
    base = Path(run_dir) / layout.CHECKPOINTS
    if not base.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in base.iterdir()
                  if (m := _STEP_RE.match(p.name)) and p.is_dir())


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first, as (step, directory)."""
    return [(s, p) for s, p in step_dirs(run_dir) if is_complete(p)]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    cks = list_checkpoints(run_dir)
    return cks[-1][1] if cks else None


def has_run(run_dir: str | os.PathLike) -> bool:
    """A run directory with a checkpoint (ours) or Ray Train state."""
    run_dir = Path(run_dir)
    return (run_dir / RAY_TRAIN_SNAPSHOT).exists() or bool(list_checkpoints(run_dir))


def refuse_existing_run(run_dir: str | os.PathLike, resume: bool) -> None:
    """Never train a new run over an existing one's checkpoints and metrics."""
    if has_run(run_dir) and not resume:
        raise RunExistsError(f"{run_dir} already holds a run: resume it (--resume), or choose "
                             f"another run name (--run)")


# --------------------------------------------------------------------------------------------
# every run under a root, and model directories
# --------------------------------------------------------------------------------------------

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def checkpoint_dirs(root: str | os.PathLike) -> list[Path]:
    """Complete pretrain checkpoints of every run under `<root>/pretrain`, oldest first: each
    run's in step order (file times change when a run root is copied), the runs in the order
    their newest weights were written."""
    base = Path(root) / layout.PRETRAIN
    runs = [list_checkpoints(d) for d in sorted(base.iterdir()) if d.is_dir()] \
        if base.is_dir() else []

    def written(checkpoints: list[tuple[int, Path]]) -> int:
        return max((ck / "model.safetensors").stat().st_mtime_ns for _, ck in checkpoints)

    return [ck for run in sorted(filter(None, runs), key=written) for _, ck in run]


def newest_checkpoint(root: str | os.PathLike) -> Path:
    found = checkpoint_dirs(root)
    if not found:
        raise FileNotFoundError(f"no pretrain checkpoint under {Path(root) / layout.PRETRAIN}: "
                                "run pretrain first, or pass --checkpoint DIR (any HF RoBERTa dir)")
    return found[-1]


def finished_checkpoint(run_dir: str | os.PathLike, steps: int) -> Path | None:
    """The run's last checkpoint if it reached update `steps`, else None."""
    checkpoints = list_checkpoints(run_dir)
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


__all__ = ["FORMAT_VERSION", "MANIFEST", "CheckpointError", "RunExistsError", "step_dir_name",
           "read_manifest", "is_complete", "verify_checkpoint", "file_digest", "step_dirs",
           "list_checkpoints", "latest_checkpoint", "has_run", "refuse_existing_run",
           "WEIGHT_FILES", "checkpoint_dirs", "newest_checkpoint", "finished_checkpoint",
           "model_name", "checkpoint_fingerprint"]
