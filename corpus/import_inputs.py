"""Resolve import-corpus inputs (any file type, unlike build-corpus's WARC-only listing)
and fetch remote ones with corpus.inputs.fetch (streamed, retried, verified, atomic).

An input is a local file, a directory (searched recursively; hidden files skipped), a glob,
an http(s) URL, or a pyarrow-filesystem URI (`s3://bucket/key`, a prefix, or a glob).
"""
from __future__ import annotations

import fnmatch
import glob
import re
from pathlib import Path
from typing import Iterable

from corpus.import_pipeline import import_input_id
from corpus.inputs import InputError, WarcSource, fetch


class ImportSource(WarcSource):
    """A remote or local import input; `input_id` keeps the file's own suffixes off."""

    @property
    def input_id(self) -> str:
        return import_input_id(self.location)


def _visible(p: Path) -> bool:
    return p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])


def _list_local(spec: str) -> list[str]:
    path = Path(spec)
    if any(ch in spec for ch in "*?["):
        found = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
        if not found:
            raise InputError(f"glob matched no files: {spec}")
        return [str(p.resolve()) for p in found]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if _visible(p))
        if not found:
            raise InputError(f"directory holds no files: {spec}")
        return [str(p.resolve()) for p in found]
    if path.is_file():
        return [str(path.resolve())]
    raise InputError(f"input does not exist: {spec}")


def _list_uri(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    scheme, rest = uri.split("://", 1)
    is_glob = any(ch in rest for ch in "*?[")
    root = re.split(r"[*?\[]", rest, maxsplit=1)[0].rsplit("/", 1)[0] if is_glob else rest
    try:
        fs, path = pafs.FileSystem.from_uri(f"{scheme}://{root}")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad URIs
        raise InputError(f"cannot open {uri}: {exc}") from exc
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File and not is_glob:
        found = [info.path]
    elif info.type == pafs.FileType.Directory:
        found = [i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                 if i.is_file and not i.base_name.startswith(".")]
        if is_glob:
            found = [p for p in found if fnmatch.fnmatch(p, path + rest[len(root):])]
    else:
        raise InputError(f"input does not exist: {uri}")
    if not found:
        raise InputError(f"no files under {uri}")
    return [f"{scheme}://{p.lstrip('/')}" if scheme != "file" else f"file://{p}"
            for p in sorted(found)]


def resolve_import_inputs(specs: Iterable[str]) -> list[ImportSource]:
    """Every spec expanded into files, in a deterministic order, without duplicates."""
    seen: dict[str, ImportSource] = {}
    specs = list(specs)
    for spec in specs:
        spec = str(spec)
        if spec.startswith(("http://", "https://")):
            locations = [spec]
        elif "://" in spec and not spec.startswith("file://"):
            locations = _list_uri(spec)
        else:
            locations = _list_local(spec.removeprefix("file://"))
        for loc in locations:
            seen.setdefault(loc, ImportSource(loc))
    if not seen:
        raise InputError(f"no input files in {specs}")
    return list(seen.values())


def fetch_import(source: ImportSource, dest_dir: Path, retries: int = 4) -> Path:
    """A local path for the input: itself, or a verified download under `dest_dir`."""
    return fetch(source, dest_dir, retries=retries)
