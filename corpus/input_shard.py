"""One input's output under a run root, the same for build-corpus (a WARC file,
corpus.warc_file) and import-corpus (any other file, corpus.import_pipeline):

    <root>/corpus/shards/<input-id>.parquet   its candidate documents, before the global dedup
    <root>/corpus/manifests/<input-id>.json   what became of every record read; written last

`ShardWriter` writes both: the rows in batches to a temporary shard, which takes its name
only once the input has been read to its end, then the manifest, whose counts per outcome
sum to the records read. So an input whose shard and manifest both exist is finished, and
a rerun skips it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections import Counter
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from runroot import layout, storage

MANIFEST_VERSION = 1
ROWS_PER_BATCH = 1000


def input_id_from_name(name: str, suffixes: re.Pattern) -> str:
    """Stable, filesystem-safe id of an input: its file name without the `suffixes` of its
    format, plus a short hash of the full name (URL or path), so that equal file names in
    different places differ."""
    base = str(name).rstrip("/").rsplit("/", 1)[-1]
    base = suffixes.sub("", base)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "input"
    return f"{safe}-{hashlib.blake2b(str(name).encode(), digest_size=4).hexdigest()}"


def outcome_summary(counts: dict[str, int], top: int = 3) -> str:
    """The most frequent outcomes, e.g. '3 corrupt_record, 1 not_response'."""
    ranked = sorted(((n, o) for o, n in counts.items() if n), reverse=True)
    text = ", ".join(f"{n:,} {o}" for n, o in ranked[:top])
    return text + (f", {len(ranked) - top} more outcomes" if len(ranked) > top else "")


def output_paths(out_root: str | os.PathLike, input_id: str) -> tuple:
    """(filesystem, shard path, manifest path) of one input's output under `out_root`."""
    fs, base = storage.resolve(out_root)
    return (fs, storage.join(base, layout.input_shard(input_id)),
            storage.join(base, layout.input_manifest(input_id)))


def finished_manifest(fs, shard: str, manifest_file: str) -> dict | None:
    """The stored manifest, marked `skipped`, when this input's shard and manifest both exist
    (the manifest is written last, so both present means the input is done)."""
    if storage.exists(fs, manifest_file) and storage.exists(fs, shard):
        return storage.read_json(fs, manifest_file) | {"skipped": True}
    return None


def is_done(root: str | os.PathLike, input_id: str) -> bool:
    """True when the input's shard and manifest both exist (any filesystem)."""
    fs, shard, manifest_file = output_paths(root, input_id)
    return storage.exists(fs, manifest_file) and storage.exists(fs, shard)


class ShardWriter:
    """Writes one input's shard, then its manifest; counts the outcome of every record.

        out = ShardWriter(root, input_id, input_name, schema)
        with out.writing():
            for each record read: out.add(outcome, row of a candidate document or None)
        out.write_manifest(the outcomes of this kind of input, **its own manifest fields)

    `errors` collects what the manifest lists as damage (dicts naming file and place)."""

    def __init__(self, out_root: str | os.PathLike, input_id: str, input_name: str,
                 schema: pa.Schema):
        self.fs, self.shard, self.manifest_file = output_paths(out_root, input_id)
        self.input_id, self.input_name, self.schema = input_id, input_name, schema
        self.counts: Counter[str] = Counter()
        self.errors: list[dict] = []
        self.records = self.documents = 0
        self._rows: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def writing(self) -> Iterator[ShardWriter]:
        """The shard is written under a temporary name while the block runs, and takes its
        name when the block ends (the temporary is deleted if the block raises). The input id
        is this input's alone, so the temporaries of killed runs are removed first on any
        filesystem, not only where their writer's process can be asked about."""
        with storage.atomic_output(self.fs, self.shard, clean=True) as tmp, \
                pq.ParquetWriter(tmp, self.schema, filesystem=self.fs,
                                 compression="zstd") as writer:
            self._writer = writer
            yield self
            self._flush()
        self._writer = None

    def add(self, outcome: str, row: dict | None = None) -> None:
        """One record read, with its outcome, and its row when it is a candidate document."""
        self.records += 1
        self.counts[outcome] += 1
        if row is not None:
            self._rows.append(row)
            self.documents += 1
            if len(self._rows) >= ROWS_PER_BATCH:
                self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def write_manifest(self, outcome_names, **fields) -> dict:
        """Write the manifest (atomically) and return it: the counts list every outcome of
        `outcome_names` (0 when none happened) and sum to the records read; `fields` are
        those of this kind of input."""
        manifest = {
            "version": MANIFEST_VERSION,
            "input_id": self.input_id,
            "input": self.input_name,
            "shard": layout.input_shard(self.input_id),
            "records_read": self.records,
            "documents": self.documents,
            "counts": {k: self.counts.get(k, 0) for k in outcome_names} | dict(self.counts),
            "errors": self.errors,
            **fields,
            "seconds": round(time.perf_counter() - self._started, 3),
        }
        assert sum(manifest["counts"].values()) == self.records, "an outcome was lost"
        storage.write_json_atomic(self.fs, self.manifest_file, manifest)
        return manifest
