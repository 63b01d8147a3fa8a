"""The finetuning job cache: each finished job as `<root>/results/jobs/<task>/<key>.json`, its
dev predictions under `<root>/results/predictions/<task>/<key>/`.

The key covers the checkpoint (its weights' fingerprint), the task's data (a fingerprint of
its files' content: changed data is finetuned on again, the same files copied elsewhere are
not), the task and every setting of the job, so a rerun does not repeat a job. Failed jobs
are not stored: a rerun retries them. A stored job that cannot be read, or whose predictions
are gone, is rerun, never the whole evaluation stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from runroot import layout, storage

# (path, size, mtime, inode) -> sha256 of the file: a nightly run fingerprints the same
# multi-megabyte files once per job otherwise.
_DIGESTS: dict[tuple, str] = {}


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def data_fingerprint(task: str, data_dir: str | os.PathLike) -> str:
    """A hash of the content of every data file of `task` with its name under the data
    directory (RACE splits are folders: each file in them). Where the directory is, or when
    its files were copied, does not matter. A missing file is part of the hash, not an
    error: the job reports it."""
    from evaluation.readers import task_files

    base = Path(data_dir).resolve()
    lines = []
    for path in task_files(task, base).values():
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_dir():
                continue
            try:
                lines.append(f"{f.relative_to(base)}:{_file_digest(f)}")
            except FileNotFoundError:
                lines.append(f"{f.relative_to(base)}:missing")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def job_key(fingerprint: str, data: str, job: dict) -> str:
    blob = json.dumps({"checkpoint": fingerprint, "data": data, **job}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def job_path(root: str | os.PathLike, task: str, key: str) -> Path:
    return Path(root) / layout.JOBS / task / f"{key}.json"


def predictions_dir(root: str | os.PathLike, task: str, key: str) -> Path:
    return Path(root) / layout.PREDICTIONS / task / key


def _problem(result, predictions: Path | None) -> str | None:
    """Why a stored job cannot stand for a finished one, or None."""
    if not isinstance(result, dict) or result.get("error") or not result.get("best"):
        return "not a finished result"
    if predictions is None:
        return None
    saved = result.get("predictions")
    if not saved:
        return "it has no saved predictions"
    missing = [f for f in saved["files"] if not (predictions / f).is_file()]
    return f"its predictions are missing ({', '.join(missing)})" if missing else None


def read_cached(path: Path, warn: Callable[[str], None],
                predictions: Path | None = None) -> dict | None:
    """The stored result at `path`, or None when there is none or it is unusable (a truncated
    or foreign file; its prediction files not in `predictions`, when given), which `warn` is
    told. The result's predictions are said to be in `predictions` (the run root may have
    moved since)."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warn(f"ignoring unreadable cached job {path} ({e}): rerunning it")
        return None
    problem = _problem(result, predictions)
    if problem:
        warn(f"ignoring cached job {path}: {problem}; rerunning it")
        return None
    if predictions is not None:
        result["predictions"]["dir"] = str(predictions)
    return result


def store(path: Path, result: dict) -> None:
    storage.save_json(path, result, indent=None, sort_keys=False, default=str)


__all__ = ["data_fingerprint", "job_key", "job_path", "predictions_dir", "read_cached", "store"]
