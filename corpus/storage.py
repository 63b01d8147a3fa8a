"""Run-root file access through pyarrow filesystems (local paths, s3://, gs://, ...), with
atomic writes: write under a temporary name, then move into place, so a reader sees either
nothing or the whole file. On object stores the move is a copy+delete, still never a partial
object; a manifest written last marks the step as done.
"""
from __future__ import annotations

import json
import os
import uuid

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
