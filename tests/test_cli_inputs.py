"""The corpus commands as a new user meets them, through real Prefect: every input gets its own
line on the console; inputs that give nothing usable end the run with exit 3, naming the
input and the cause; Wikimedia's dumps import under their real names; it all fits 80
columns."""
import gzip
import json

import pyarrow.parquet as pq

from flows.cli import main
from flows.cli.common import EXIT_OK, EXIT_PARTIAL
from tests.test_import_readers import english_docs, write_wiki_dump
from tests.test_input_kinds import MULTISTREAM_INDEX, SPLIT_DUMP, write_multistream_pair


def lines_fit(text: str, paths: str, width: int = 80) -> bool:
    """Every line fits, but those holding a path (kept whole, so it can be copied)."""
    return all(len(line) <= width for line in text.splitlines() if paths not in line)


def test_build_corpus_names_each_input_and_exits_3_on_empty_or_not_a_warc(tmp_path, capsys):
    from corpus.sample_crawl import generate_crawl

    inputs = tmp_path / "in"
    inputs.mkdir()
    generate_crawl(inputs / "good.warc.gz", 6, frac_non_english=0.0, frac_duplicates=0.0, seed=5)
    (inputs / "empty.warc.gz").write_bytes(b"")
    (inputs / "empty.warc").write_bytes(b"")
    (inputs / "notes.warc").write_text("my notes, not a crawl\n" * 20)
    argv = ["build-corpus", "--root", str(tmp_path / "run"), "--runner", "threads",
            "--workers", "2", str(inputs)]
    assert main(argv) == EXIT_PARTIAL
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and lines_fit(out, str(tmp_path)), out
    assert "✗ empty.warc.gz: empty: no WARC records" in out
    assert "✗ empty.warc: empty: no WARC records" in out
    assert "✗ notes.warc: not a WARC file: text (roberta import-corpus reads it)" in out
    assert "✓ good.warc.gz: " in out and " documents, " in out and "pages/s" in out
    # a rerun skips the good input and reads the others again (they may have been fixed)
    (inputs / "notes.warc").unlink()
    (inputs / "empty.warc").write_bytes((inputs / "good.warc.gz").read_bytes())
    assert main(argv) == EXIT_PARTIAL
    out = capsys.readouterr().out
    assert "✓ good.warc.gz: " in out and "done earlier" in out
    assert "✓ empty.warc: " in out and "✗ empty.warc.gz: empty" in out


def test_import_corpus_takes_wikimedia_dumps_by_their_names(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    articles = english_docs(6)
    write_wiki_dump(inputs / SPLIT_DUMP, articles[:2])
    write_multistream_pair(inputs, articles[2:4])
    (inputs / "extra.jsonl.gz").write_bytes(gzip.compress("".join(
        json.dumps({"text": d}) + "\n" for d in articles[4:]).encode()))
    root = tmp_path / "run"
    assert main(["import-corpus", "--root", str(root), "--name", "wikipedia", "--runner",
                 "threads", str(inputs)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and lines_fit(out, str(tmp_path)), out
    out = " ".join(out.split())      # long lines wrap at spaces
    assert f"✓ {SPLIT_DUMP}: 5 records → 2 documents" in out
    assert f"– {MULTISTREAM_INDEX}: skipped: the index of a multistream dump" in out
    assert "✓ extra.jsonl.gz: 2 records → 2 documents" in out
    docs = pq.read_table(root / "corpus" / "documents").to_pylist()
    assert sorted(d["text"] for d in docs) == sorted(
        d["text"] for d in docs if d["corpus_name"] == "wikipedia")
    assert len(docs) == 6


def test_a_damaged_record_is_one_printable_line_without_the_bytes_it_quotes():
    from rich.console import Console

    from flows.cli.build_corpus import print_damaged_records

    console = Console(record=True, width=80)
    print_damaged_records(console, [
        {"file": "/data/crawl/a.warc.gz", "offset": 399018,
         "message": "ArchiveLoadFailed: Invalid WARC record, first line: \n\x8b\x08\x00\x00\xff"
                    "\x1f\x8b\x7fgarbage"},
        {"file": "/data/notes.warc", "offset": 0,
         "message": "not a WARC file: Invalid WARC record, first line: hello, not a warc"}])
    text = " ".join(console.export_text().split())     # as read, across the wraps
    assert "a.warc.gz at byte 399018: ArchiveLoadFailed: Invalid WARC record, first line: " \
           "(binary data)" in text
    assert "garbage" not in text and "?" not in text
    assert "first line: hello, not a warc" in text


def test_thousands_of_inputs_list_the_first_clean_ones_and_every_problem():
    from rich.console import Console

    from flows.cli.build_corpus import MAX_CLEAN_LINES, print_inputs

    def row(i: int, problem: str = "") -> dict:
        return {"input": f"/crawl/part-{i:05d}.warc.gz", "problem": problem, "note": "",
                "warning": "", "done_earlier": False, "seconds": 1.0, "pages": 10,
                "records": 12, "documents": 9}
    rows = [row(i) for i in range(3000)]
    rows.insert(2500, row(99999, problem="empty: no WARC records"))
    console = Console(record=True, width=200)
    code = print_inputs(console, {"per_input": rows, "failed_inputs": [],
                                  "unusable_inputs": [rows[2500]]}, unit="pages")
    lines = console.export_text().splitlines()
    assert code == EXIT_PARTIAL
    assert [line for line in lines if line.startswith("✓")] == [
        f"✓ part-{i:05d}.warc.gz: 12 records → 9 documents, 10.0 pages/s"
        for i in range(MAX_CLEAN_LINES)]
    assert "✗ part-99999.warc.gz: empty: no WARC records" in lines
    assert f"  … and {3000 - MAX_CLEAN_LINES:,} more inputs without problems" in "\n".join(lines)
