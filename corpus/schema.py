"""Parquet schemas of the corpus artifacts (DESIGN.md "Document row")."""
from __future__ import annotations

import pyarrow as pa

DOCUMENT_FIELDS = [
    pa.field("doc_id", pa.string()),                       # stable hash (corpus.hashing.doc_id)
    pa.field("url", pa.string()),
    pa.field("host", pa.string()),
    pa.field("crawl_date", pa.timestamp("ms", tz="UTC")),  # WARC-Date (Parquet has no seconds unit)
    pa.field("published", pa.date32()),                    # trafilatura's publication date, or null
    pa.field("title", pa.string()),
    pa.field("text", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float32()),
    pa.field("n_words", pa.int32()),
    pa.field("content_hash", pa.string()),                 # blake2b of normalised text
    pa.field("source", pa.string()),                       # "<input name>@<record offset>"
    pa.field("source_offset", pa.int64()),                 # byte offset of the WARC record
    pa.field("input_id", pa.string()),
    # Which corpus the document came from ("cc-news", "wikipedia", "openwebtext", ...):
    # build-corpus's CorpusConfig.corpus_name, import-corpus's --name. Mixture weights
    # (train-tokenizer / shard-corpus --mix) and per-source token counts key on it.
    pa.field("corpus_name", pa.string()),
]


def document_schema() -> pa.Schema:
    """corpus/documents/part-*.parquet"""
    return pa.schema(DOCUMENT_FIELDS)


def shard_schema(num_perm: int) -> pa.Schema:
    """corpus/shards/<input-id>.parquet: documents plus their MinHash signature."""
    return pa.schema(DOCUMENT_FIELDS + [pa.field("minhash", pa.list_(pa.uint32(), num_perm))])
