"""Resolve import-corpus inputs (any file type, unlike build-corpus's WARC-only listing)
and fetch remote ones with corpus.inputs.fetch (streamed, retried, verified, atomic).

An input is a local file, a directory (searched recursively; hidden files skipped), a glob,
an http(s) URL, or a pyarrow-filesystem URI (`s3://bucket/key`, a prefix, or a glob).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from corpus.import_pipeline import import_input_id
from corpus.inputs import InputError, WarcSource, fetch, list_filesystem_uri, list_local


class ImportSource(WarcSource):
    """A remote or local import input; `input_id` keeps the file's own suffixes off."""

    @property
    def input_id(self) -> str:
        return import_input_id(self.location)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def resolve_import_inputs(specs: Iterable[str]) -> list[ImportSource]:
    """Every spec expanded into files, in a deterministic order, without duplicates."""
    seen: dict[str, ImportSource] = {}
    specs = list(specs)
    for spec in specs:
        spec = str(spec)
        if spec.startswith(("http://", "https://")):
            locations = [spec]
        elif "://" in spec and not spec.startswith("file://"):
            locations = list_filesystem_uri(spec, accept=_visible, kind="files")
        else:
            locations = list_local(spec.removeprefix("file://"), accept=_visible, kind="files")
        for loc in locations:
            seen.setdefault(loc, ImportSource(loc))
    if not seen:
        raise InputError(f"no input files in {specs}")
    return list(seen.values())


def fetch_import(source: ImportSource, dest_dir: Path, retries: int = 4) -> Path:
    """A local path for the input: itself, or a verified download under `dest_dir`."""
    return fetch(source, dest_dir, retries=retries)
