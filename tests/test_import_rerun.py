"""import-corpus reruns: an input is skipped only when neither its content (size, mtime)
nor the import parameters changed; otherwise it is reimported, replacing its output.
Truncated compressed inputs are marked damaged. Also: `.txt.xz` is text, and damage
messages do not repeat their place."""
import io
import lzma
import os
import tarfile

import pyarrow.parquet as pq

from corpus.import_pipeline import process_import
from corpus.importers import detect_format
from flows.import_corpus import import_input, summarize_import
from tests.test_import_readers import english_docs, write_wiki_dump

COLUMNS = {"text": "text", "id": "id", "url": "url", "title": "title"}


def run_task(path, root, name, fmt="auto"):
    return import_input.fn(str(path), str(root), name, fmt, COLUMNS, {}, False, 0)


def shard(root, m):
    return pq.read_table(root / m["shard"]).to_pylist()


def test_rerun_with_other_name_or_format_reimports_in_place(tmp_path):
    root = tmp_path / "run"
    books = tmp_path / "books.txt"
    docs = english_docs(3)
    books.write_text("\n\n".join(docs) + "\n")
    first = run_task(books, root, "books")
    assert first["documents"] == 1 and first["corpus_name"] == "books"
    shard_file = root / first["shard"]
    written = shard_file.stat().st_mtime_ns
    assert run_task(books, root, "books")["seconds"] == first["seconds"]  # skipped
    assert shard_file.stat().st_mtime_ns == written

    again = run_task(books, root, "stories", "text-blank-lines")
    assert again["input_id"] == first["input_id"]          # same output, replaced
    rows = shard(root, again)
    assert len(rows) == 3 and {r["corpus_name"] for r in rows} == {"stories"}
    assert len(list((root / "corpus" / "shards").glob("*.parquet"))) == 1
    assert run_task(books, root, "stories", "text-blank-lines").get("skipped")


def test_changed_file_is_reimported_and_truncation_is_damage(tmp_path):
    root = tmp_path / "run"
    dump = tmp_path / "enwiki-20190101-pages-articles1.xml.bz2"
    write_wiki_dump(dump, english_docs(3))
    complete = dump.read_bytes()
    dump.write_bytes(complete[: len(complete) // 2])
    cut = run_task(dump, root, "wikipedia")
    assert cut["damaged"] and cut["counts"]["bad_record"] == 1
    assert "ended before the end-of-stream" in cut["errors"][0]["message"]
    summary = summarize_import([cut], [], {"counts": {"documents_kept": 0}}, str(root),
                               "wikipedia")
    assert summary["damaged_inputs"] == [str(dump)]

    dump.write_bytes(complete)
    os.utime(dump, ns=(os.stat(dump).st_atime_ns, os.stat(dump).st_mtime_ns + 10**9))
    fixed = run_task(dump, root, "wikipedia")
    assert not fixed.get("skipped") and not fixed["damaged"] and fixed["errors"] == []
    assert fixed["counts"]["kept"] == 3 and len(shard(root, fixed)) == 3


def test_same_size_newer_mtime_reimports(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(english_docs(1)[0])
    m = process_import(path, tmp_path / "run", "web")
    assert process_import(path, tmp_path / "run", "web")["skipped"]
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    again = process_import(path, tmp_path / "run", "web")
    assert not again.get("skipped") and again["counts"] == m["counts"]


def test_compressed_plain_text_is_text(tmp_path):
    for name in ("plain.txt.xz", "plain.txt.gz", "plain.txt.bz2", "a/b/plain.TXT.XZ"):
        assert detect_format(name) == "text", name
    assert detect_format("urlsf_subset00-1_data.xz") == "owt"
    doc = english_docs(1)[0]
    path = tmp_path / "plain.txt.xz"
    path.write_bytes(lzma.compress(doc.encode()))
    m = process_import(path, tmp_path / "run", "web")
    assert m["errors"] == [] and m["counts"]["kept"] == 1


def test_damage_messages_do_not_repeat_their_place(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"a.txt": english_docs(1)[0].encode(), "b.txt": b"caf\xe9"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "owt.tar.gz"
    archive.write_bytes(buf.getvalue())
    m = process_import(archive, tmp_path / "run", "openwebtext")
    (err,) = m["errors"]
    assert err["where"] == "member b.txt" and err["message"] == "not UTF-8 text"

    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{broken\n{"other": 1}\n')
    m = process_import(jsonl, tmp_path / "run", "web")
    assert [e["where"] for e in m["errors"]] == ["line 1", "line 2"]
    assert not any(e["message"].startswith("line ") for e in m["errors"])
