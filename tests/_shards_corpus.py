"""Small documents corpora in the `<root>/corpus/documents/part-*.parquet` layout, built from
real English text (Python's own documentation topics), for tokenizer and shard tests."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def english_documents(n: int | None = None, min_chars: int = 200) -> list[str]:
    from pydoc_data.topics import topics

    docs = [t.strip() for _, t in sorted(topics.items()) if len(t.strip()) >= min_chars]
    return docs[:n] if n else docs


def doc_row(text, i: int, source: str = "test") -> dict:
    doc_id = hashlib.sha1(f"{source}-{i}".encode()).hexdigest()[:16]
    n_words = len(text.split()) if isinstance(text, str) else 0
    return {"doc_id": doc_id, "url": f"https://example.org/{i}", "host": "example.org",
            "crawl_date": "2019-01-01", "published": None, "title": f"doc {i}",
            "text": text, "lang": "en", "lang_score": 0.99, "n_words": n_words,
            "content_hash": hashlib.sha1(str(text).encode()).hexdigest(),
            "source": f"{source}:{i}"}


def write_corpus(root: Path, texts: list, n_parts: int = 2) -> Path:
    """Write texts (str, or bytes for deliberately broken rows) round-robin... in contiguous
    slices over n_parts part files. Returns the documents directory."""
    d = Path(root) / "corpus" / "documents"
    d.mkdir(parents=True, exist_ok=True)
    rows = [doc_row(t, i) for i, t in enumerate(texts)]
    per = max(1, -(-len(rows) // n_parts))
    for p in range(n_parts):
        chunk = rows[p * per:(p + 1) * per]
        if not chunk and p > 0:
            continue
        cols = {k: [r[k] for r in chunk] for k in doc_row("", 0)}
        texts_col = cols.pop("text")
        if any(isinstance(t, bytes) for t in texts_col):
            raw = pa.array([t if isinstance(t, bytes) else t.encode() for t in texts_col],
                           pa.binary())
            text_arr = raw.view(pa.string())  # no validation: invalid UTF-8 reaches the file
        else:
            text_arr = pa.array(texts_col, pa.string())
        table = pa.table({**{k: pa.array(v) for k, v in cols.items()}, "text": text_arr})
        pq.write_table(table, d / f"part-{p:05d}.parquet")
    return d
