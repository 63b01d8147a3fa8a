"""Reading the corpus that build-corpus and import-corpus write, `<root>/corpus/documents/
part-*.parquet`: its parts in name order, each streamed in record batches with the texts
decoded. Read by train-tokenizer (corpus.bpe, corpus.char_bpe) and shard-corpus
(corpus.sharding).
"""
from __future__ import annotations

import os
from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from runroot import layout, storage


def list_documents(root: str | os.PathLike) -> tuple[pafs.FileSystem, list[str]]:
    """The corpus parts `<root>/corpus/documents/part-*.parquet`, sorted by name; an error
    when there is no corpus or it has no part."""
    fs, base = storage.resolve(root)
    docdir = storage.join(base, layout.DOCUMENTS)
    if not storage.exists(fs, docdir):
        raise FileNotFoundError(f"no corpus at {docdir}: run build-corpus first")
    infos = fs.get_file_info(pafs.FileSelector(docdir))
    parts = sorted(i.path for i in infos
                   if i.type == pafs.FileType.File and i.base_name.startswith("part-")
                   and i.base_name.endswith(".parquet"))
    if not parts:
        raise ValueError(f"empty corpus: no part-*.parquet under {root}/{layout.DOCUMENTS}")
    return fs, parts


def part_sizes(fs: pafs.FileSystem, parts: list[str]) -> list[list]:
    """[name, size in bytes] of each part: what a stage's parameters record of the corpus,
    so that a rerun on a changed corpus is not mistaken for one on the corpus it processed."""
    return [[p.rsplit("/", 1)[1], fs.get_file_info(p).size] for p in parts]


def decode_texts(col: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Python strings of a text column; None where the bytes are not valid UTF-8.

    Valid columns (the usual case) convert in one call; otherwise row by row. Lone
    surrogates encoded in UTF-8 (CESU-style bytes) are invalid UTF-8 and come back None.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            col.validate(full=True)
            return ["" if t is None else t for t in col.to_pylist()]
        except pa.ArrowInvalid:  # some row is not UTF-8: find which, as bytes
            col = col.view(pa.large_binary() if pa.types.is_large_string(col.type)
                           else pa.binary())
    out: list[str | None] = []
    for b in col.to_pylist():
        if b is None:
            out.append("")
            continue
        try:
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def iter_document_batches(fs: pafs.FileSystem, path: str, batch_size: int = 1000,
                          columns: tuple[str, ...] = ("doc_id", "text"),
                          optional: tuple[str, ...] = (),
                          ) -> Iterator[dict[str, list]]:
    """Stream one corpus part in record batches: {'doc_id': [...], 'text': [str|None]}.
    `optional` columns come back as lists of None when the part lacks them (e.g.
    `corpus_name` in a corpus built before that column existed)."""
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: corpus part lacks column(s) {missing}")
        present = [c for c in optional if c in pf.schema_arrow.names and c not in columns]
        absent = [c for c in optional if c not in pf.schema_arrow.names]
        for rb in pf.iter_batches(batch_size=batch_size, columns=list(columns) + present):
            out = {}
            for name in list(columns) + present:
                col = rb.column(name)
                out[name] = decode_texts(col) if name == "text" else col.to_pylist()
            for name in absent:
                out[name] = [None] * rb.num_rows
            yield out
