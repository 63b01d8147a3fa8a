"""Run-root file access through pyarrow filesystems (local paths, s3://, gs://, ...), with
atomic writes: write under a temporary name, then move into place, so a reader sees either
nothing or the whole file. On object stores the move is a copy+delete, still never a partial
object; a manifest written last marks the step as done.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq


def resolve(root: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a run root given as a local path or a URI."""
    root = str(root)
    if "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(root)


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def is_uri(root: str | os.PathLike) -> bool:
    return "://" in str(root)


def under(root: str | os.PathLike, *parts: str) -> str:
    """`root/parts...` for display and for APIs that take a root: a URI stays a URI (never
    `Path("s3://b/r")`, which collapses to the local relative path `s3:/b/r`)."""
    return join(str(root) if is_uri(root) else os.path.abspath(root), *parts)


def downloads_dir(root: str | os.PathLike) -> Path:
    """Where inputs are downloaded before processing: a local folder in any case (the WARC
    reader needs a local file), `<root>/corpus/downloads` for a local root, else a folder of
    the temp dir named after the root."""
    if not is_uri(root):
        return Path(root) / "corpus" / "downloads"
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "roberta-downloads" / key


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.tmp-{uuid.uuid4().hex[:8]}"


def commit(fs: pafs.FileSystem, tmp: str, path: str) -> None:
    fs.move(tmp, path)


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    tmp = tmp_name(path)
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    commit(fs, tmp, path)


def write_json_atomic(fs: pafs.FileSystem, path: str, obj) -> None:
    write_bytes_atomic(fs, path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(fs: pafs.FileSystem, path: str):
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def write_table_atomic(fs: pafs.FileSystem, path: str, table, **kwargs) -> None:
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    tmp = tmp_name(path)
    pq.write_table(table, tmp, filesystem=fs, **kwargs)
    commit(fs, tmp, path)
