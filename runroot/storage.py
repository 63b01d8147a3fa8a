"""Storage of run-root files: local paths or any URI pyarrow understands (s3://, gs://, ...),
and the one way the project writes a file or folder so that a reader never sees half of it.

Atomic writes: the data goes to a temporary sibling `.<name>.tmp-<pid>-<random>`, which is
moved onto the final name only when it is complete. On a local filesystem the move is a
rename; on an object store it is a copy+delete, still never a partial object. A writer that
is killed leaves its temporary behind; `remove_stale_temps` (called before each atomic write)
deletes those of writers that are gone, so a rerun does not accumulate them.

Imports nothing heavier than pyarrow, so every package, the training core included, uses it.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterator

import pyarrow.fs as pafs

_TMP = ".tmp-"


# ---------------------------------------------------------------- paths and filesystems

def is_uri(root: str | os.PathLike) -> bool:
    return "://" in os.fspath(root)


def resolve(root: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a pyarrow-understood URI."""
    root = os.fspath(root)
    if is_uri(root):
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(root)


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def under(root: str | os.PathLike, *parts: str) -> str:
    """`root/parts...` for display and for APIs that take a root: a URI stays a URI (never
    `Path("s3://b/r")`, which collapses to the local relative path `s3:/b/r`)."""
    root = os.fspath(root)
    return join(root if is_uri(root) else os.path.abspath(root), *parts)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def read_json(fs: pafs.FileSystem, path: str):
    return json.loads(read_bytes(fs, path))


def json_text(obj, *, indent: int | None = 2, sort_keys: bool = True, default=None) -> str:
    """The project's JSON file format: indented, keys sorted, a final newline."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n"


# ---------------------------------------------------------------- atomic writes

def temp_name(path: str) -> str:
    """A temporary sibling of `path` that names its writer's process."""
    head, _, tail = str(path).rpartition("/")
    return f"{head}/.{tail}{_TMP}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _writer_gone(temp_base_name: str, local: bool) -> bool:
    """Whether the process that wrote this temporary is gone. Only a local filesystem can
    tell; elsewhere (object stores, a volume shared across hosts) the caller owns the final
    name, so any earlier temporary of it is stale."""
    if not local:
        return True
    pid = temp_base_name.rsplit(_TMP, 1)[1].split("-", 1)[0]
    if not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:          # PermissionError: it exists, owned by someone else
        return False
    return False


def remove_stale_temps(fs: pafs.FileSystem, path: str) -> list[str]:
    """Delete the temporaries of `path` left by writers that were killed before their move
    (a concurrent writer's, on this machine, is left alone). Returns what was deleted."""
    folder, _, name = str(path).rpartition("/")
    local = isinstance(fs, pafs.LocalFileSystem)
    removed = []
    for info in fs.get_file_info(pafs.FileSelector(folder or "/", allow_not_found=True)):
        if not info.base_name.startswith(f".{name}{_TMP}") or not _writer_gone(info.base_name, local):
            continue
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(info.path)
        else:
            fs.delete_file(info.path)
        removed.append(info.path)
    return removed


def _delete(fs: pafs.FileSystem, path: str) -> None:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type != pafs.FileType.NotFound:
        fs.delete_file(path)


@contextlib.contextmanager
def atomic_output(fs: pafs.FileSystem, path: str, clean: bool | None = None) -> Iterator[str]:
    """A temporary path to write `path` at: moved onto `path` when the block ends, deleted
    when it raises. The temporary may be made a file or a folder; a folder replaces a folder
    already at `path` (deleted first: there is no atomic swap of two folders).

    clean: remove stale temporaries of `path` first. Default: on a local filesystem only;
    on an object store that lists the whole folder, which for a folder of thousands of
    inputs written one by one would cost more than the leftovers it removes."""
    folder = str(path).rpartition("/")[0]
    fs.create_dir(folder, recursive=True)
    if clean or (clean is None and isinstance(fs, pafs.LocalFileSystem)):
        remove_stale_temps(fs, path)
    tmp = temp_name(path)
    try:
        yield tmp
        if fs.get_file_info(tmp).type == pafs.FileType.Directory:
            _delete(fs, path)
        fs.move(tmp, path)
    except BaseException:
        _delete(fs, tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """`atomic_output` for local writers that want a `Path` (matplotlib, safetensors, open())."""
    fs, full = pafs.LocalFileSystem(), os.path.abspath(path)
    with atomic_output(fs, full) as tmp:
        yield Path(tmp)


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with atomic_output(fs, path) as tmp, fs.open_output_stream(tmp) as out:
        out.write(data)


def write_text_atomic(fs: pafs.FileSystem, path: str, text: str) -> None:
    write_bytes_atomic(fs, path, text.encode())


def write_json_atomic(fs: pafs.FileSystem, path: str, obj, **format_kwargs) -> None:
    """`obj` as `json_text(obj, **format_kwargs)`."""
    write_text_atomic(fs, path, json_text(obj, **format_kwargs))


def write_table_atomic(fs: pafs.FileSystem, path: str, table, **kwargs) -> None:
    import pyarrow.parquet as pq

    with atomic_output(fs, path) as tmp:
        pq.write_table(table, tmp, filesystem=fs, **kwargs)


def save_json(path: str | os.PathLike, obj, **format_kwargs) -> None:
    """`write_json_atomic` for a local path."""
    write_json_atomic(pafs.LocalFileSystem(), os.path.abspath(path), obj, **format_kwargs)


def save_text(path: str | os.PathLike, text: str) -> None:
    """`write_text_atomic` for a local path."""
    write_text_atomic(pafs.LocalFileSystem(), os.path.abspath(path), text)
