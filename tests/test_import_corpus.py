"""import-corpus across sources: a CC-NEWS article that also sits in OpenWebText is kept once
(the crawl's dated copy), and the CLI end to end on tiny inputs through real Prefect."""
import json

import pyarrow.parquet as pq
import pytest

from corpus.dedup import deduplicate
from corpus.import_pipeline import process_import
from corpus.warc_file import process_warc
from corpus.sample_crawl import generate_pages, write_warc
from tests.test_import_readers import english_docs, write_owt_archive, write_wiki_dump


def test_dedup_across_sources(tmp_path):
    root = tmp_path / "run"
    warc = tmp_path / "news.warc.gz"
    write_warc(warc, generate_pages(12, frac_non_english=0.0, frac_duplicates=0.0, seed=3), seed=3)
    news = process_warc(warc, root)
    news_rows = pq.read_table(root / news["shard"]).to_pylist()
    assert news["counts"]["kept"] >= 3 and {r["corpus_name"] for r in news_rows} == {"cc-news"}
    # OpenWebText holds two of the news articles verbatim, and one with a changed ending
    # (a near duplicate), plus its own documents.
    copied = [r["text"] for r in news_rows[:3]]
    copied[2] = copied[2].rsplit(" ", 3)[0] + " and that was all."
    own = english_docs(3, offset=30)
    archive = tmp_path / "openwebtext.tar.xz"
    write_owt_archive(archive, copied + own)
    owt = process_import(archive, root, "openwebtext")
    assert owt["counts"]["kept"] == 6

    report = deduplicate(root)
    docs = pq.read_table(root / "corpus" / "documents").to_pylist()
    assert report["counts"]["documents_in"] == len(news_rows) + 6
    assert report["counts"]["exact_duplicates"] == 2
    assert report["counts"]["near_duplicates"] == 1
    assert len(docs) == len(news_rows) + 3
    by_source = {}
    for d in docs:
        by_source.setdefault(d["corpus_name"], []).append(d)
    assert len(by_source["cc-news"]) == len(news_rows)   # the dated crawl copy is kept
    assert sorted(d["text"] for d in by_source["openwebtext"]) == sorted(own)
    # Documents without URLs are not duplicates of each other by URL.
    assert all(d["url"] is None for d in by_source["openwebtext"])


def test_cli_end_to_end(tmp_path):
    from flows.cli import main

    root = tmp_path / "run"
    dump = tmp_path / "enwiki-20190101-pages-articles1.xml.bz2"
    write_wiki_dump(dump, english_docs(3))
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text(json.dumps({"content": english_docs(1, offset=20)[0]}) + "\n{broken\n")
    code = main(["import-corpus", "--root", str(root), "--name", "wikipedia", "--runner",
                 "threads", "--workers", "2", str(dump)])
    assert code == 0
    code = main(["import-corpus", "--root", str(root), "--name", "web-text", "--runner",
                 "threads", "--text-column", "content", str(jsonl)])
    assert code == 0
    docs = pq.read_table(root / "corpus" / "documents").to_pylist()
    assert sorted(d["corpus_name"] for d in docs) == ["web-text"] + ["wikipedia"] * 3
    manifests = [json.loads(p.read_text()) for p in (root / "corpus" / "manifests").glob("*.json")]
    assert all(sum(m["counts"].values()) == m["records_read"] for m in manifests)
    assert sum(m["counts"]["bad_record"] for m in manifests) == 1
    # The mixture through the CLI: Wikipedia up-sampled 2x, tokens per source reported.
    assert main(["train-tokenizer", "--root", str(root), "--vocab-size", "400",
                 "--mix", "wikipedia=2"]) == 0
    assert main(["shard-corpus", "--root", str(root), "--block-size", "64", "--workers", "1",
                 "--valid-fraction", "0", "--mix", "wikipedia=2,web-text=1"]) == 0
    manifest = json.loads((root / "shards" / "manifest.json").read_text())
    assert manifest["mix"] == {"wikipedia": 2.0, "web-text": 1.0}
    assert manifest["splits"]["train"]["documents_by_source"] == {"wikipedia": 6, "web-text": 1}
    assert set(manifest["tokens_by_source"]) == {"wikipedia", "web-text"}
    with pytest.raises(SystemExit):
        main(["shard-corpus", "--root", str(root), "--mix", "wikipedia"])
    # Bad arguments: exit 2, naming the problem.
    assert main(["import-corpus", "--root", str(root), "--name", "x",
                 str(tmp_path / "missing.txt")]) == 2
