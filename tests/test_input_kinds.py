"""Inputs told by their content, not their name: small real files of each kind users bring
(Wikimedia's split and multistream dumps with their real names, .jsonl.gz, .jsonl.zst,
.txt.gz, files whose name says nothing), and the inputs that give nothing usable, which
end the command with exit 3 and a line naming the input and the likely cause."""
import bz2
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import file_kinds
from corpus.file_kinds import FileKind, sniff
from corpus.import_pipeline import process_import
from corpus.importers import choose_format, detect_format
from tests.test_import_readers import (WIKI_NS, english_docs, wiki_article_markup, wiki_page,
                                       write_wiki_dump)

SPLIT_DUMP = "enwiki-20190101-pages-articles1.xml-p1p41242.bz2"
MULTISTREAM = "enwiki-20190101-pages-articles-multistream1.xml-p1p41242.bz2"
MULTISTREAM_INDEX = "enwiki-20190101-pages-articles-multistream-index1.txt-p1p41242.bz2"


def write_multistream_pair(directory, articles: list[str]) -> None:
    """Wikimedia's layout: the siteinfo in the first bz2 stream, then pages in streams of their
    own (100 per stream there, 2 here), `</mediawiki>` last; the index holds each page's
    `stream offset:page id:title`."""
    head = (f'<mediawiki xmlns="{WIKI_NS}" version="0.10" xml:lang="en">\n<siteinfo>'
            "<base>https://en.wikipedia.org/wiki/Main_Page</base></siteinfo>\n")
    streams, index = [bz2.compress(head.encode())], []
    pages = [(f"Stream article {i}", 200 + i, wiki_article_markup(p))
             for i, p in enumerate(articles)]
    for start in range(0, len(pages), 2):
        offset = sum(map(len, streams))
        chunk = pages[start:start + 2]
        index += [f"{offset}:{pid}:{title}" for title, pid, _ in chunk]
        streams.append(bz2.compress("".join(wiki_page(t, 0, pid, text)
                                            for t, pid, text in chunk).encode()))
    streams.append(bz2.compress(b"</mediawiki>\n"))
    (directory / MULTISTREAM).write_bytes(b"".join(streams))
    (directory / MULTISTREAM_INDEX).write_bytes(bz2.compress("\n".join(index).encode() + b"\n"))


def kept_texts(root, manifest) -> list[str]:
    return [r["text"] for r in pq.read_table(root / manifest["shard"]).to_pylist()]


def test_sniff_tells_compression_and_content(tmp_path):
    docs = english_docs(2)
    jsonl = "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()
    files = {"a": (gzip.compress(jsonl), FileKind("gzip", "jsonl")),
             "b": (pa.compress(jsonl, codec="zstd", asbytes=True), FileKind("zstd", "jsonl")),
             "c": (bz2.compress(b"617:10:AccessibleComputing\n"), FileKind("bz2", "wiki-index")),
             "d": (b"WARC/1.0\r\nWARC-Type: warcinfo\r\n", FileKind(None, "warc")),
             "e": (b"", FileKind(None, "empty")),
             "f": (b"BZh9 is how my notes start, not a bz2 stream", FileKind(None, "text")),
             "g": (b"7z\xbc\xaf\x27\x1c\x00\x04", FileKind(None, "7z")),
             # one JSON object per line, the first longer than the 64 KiB looked at
             "h": (json.dumps({"text": "word " * 20000}).encode() + b"\n", FileKind(None, "jsonl"))}
    for name, (data, kind) in files.items():
        (tmp_path / name).write_bytes(data)
        assert sniff(tmp_path / name) == kind, name
    write_wiki_dump(tmp_path / "dump", docs)
    assert sniff(tmp_path / "dump") == FileKind("bz2", "wikipedia")
    assert sniff(tmp_path / "dump").describe() == "bz2-compressed MediaWiki XML (a Wikipedia dump)"
    pq.write_table(pa.table({"text": docs}), tmp_path / "p")
    assert sniff(tmp_path / "p") == FileKind(None, "parquet")


def test_wikimedia_names():
    for name in (SPLIT_DUMP, MULTISTREAM, "enwiki-latest-pages-articles.xml.bz2",
                 "dewiki-20240101-pages-meta-current3.xml-p1p2.bz2"):
        assert detect_format(name) == "wikipedia", name


def test_a_split_dump_with_wikimedias_name_keeps_its_articles(tmp_path):
    dump = tmp_path / SPLIT_DUMP
    articles = english_docs(3)
    write_wiki_dump(dump, articles)
    m = process_import(dump, tmp_path / "run", "wikipedia")
    assert (m["read_as"], m["chosen_by"]) == ("wikipedia", "content")
    assert m["counts"]["kept"] == 3 and m["counts"]["wiki_redirect"] == 1
    assert m["problem"] is None and m["warning"] is None
    texts = kept_texts(tmp_path / "run", m)
    assert len(texts) == 3 and all("[[" not in t and "{{" not in t for t in texts)


def test_a_multistream_pair(tmp_path):
    articles = english_docs(5)
    write_multistream_pair(tmp_path, articles)
    root = tmp_path / "run"
    dump = process_import(tmp_path / MULTISTREAM, root, "wikipedia")
    assert dump["counts"]["kept"] == 5 and dump["records_read"] == 5   # every stream read
    titles = [r["title"] for r in pq.read_table(root / dump["shard"]).to_pylist()]
    assert sorted(titles) == [f"Stream article {i}" for i in range(5)]
    index = process_import(tmp_path / MULTISTREAM_INDEX, root, "wikipedia")
    assert index["records_read"] == 0 and index["problem"] is None
    assert index["note"].startswith("skipped: the index of a multistream dump")


@pytest.mark.parametrize("name,compress", [
    ("docs.jsonl.gz", gzip.compress),
    ("docs.jsonl.zst", lambda b: pa.compress(b, codec="zstd", asbytes=True)),
    ("docs.download", gzip.compress),          # the name says nothing: the content does
    ("docs.txt.gz", None)])
def test_compressed_jsonl_and_text(tmp_path, name, compress):
    docs = english_docs(3)
    if compress is None:   # .txt.gz: documents separated by blank lines
        (tmp_path / name).write_bytes(gzip.compress("\n\n".join(docs).encode()))
        m = process_import(tmp_path / name, tmp_path / "run", "books", fmt="text-blank-lines")
    else:
        data = "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs))
        (tmp_path / name).write_bytes(compress(data.encode()))
        m = process_import(tmp_path / name, tmp_path / "run", "web")
        assert m["read_as"] == "jsonl"
    assert m["counts"]["kept"] == 3 and m["errors"] == [] and m["problem"] is None
    assert sorted(kept_texts(tmp_path / "run", m)) == sorted(docs)


def test_a_whole_file_document_that_fails_quality_suggests_format(tmp_path):
    # a CSV table, taken (--format auto, by its name: text) as one document
    csv = tmp_path / "pages.csv"
    csv.write_text("id,title,views\n" + "".join(
        f"{i},Notes about the river and the town {i},{i * 37}\n" for i in range(100)))
    m = process_import(csv, tmp_path / "run", "web")
    assert m["records_read"] == 1 and m["counts"]["quality_terminal_punct"] == 1
    assert "the whole file was taken as one document" in m["warning"]
    assert "pass --format" in m["warning"] and m["problem"] is None
    # too long to be one document: nothing kept because of the input's format, exit 3
    big = tmp_path / "book.txt"
    big.write_text("\n\n".join(english_docs(3)) * 400)
    m = process_import(big, tmp_path / "run", "books")
    assert "failed quality_too_many_words" in m["problem"] and "pass --format" in m["problem"]


def test_inputs_that_give_nothing_usable_name_the_cause(tmp_path):
    root = tmp_path / "run"
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "crawl.warc").write_bytes(b"WARC/1.0\r\nWARC-Type: warcinfo\r\n\r\n")
    (tmp_path / "other.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    (tmp_path / "dump.7z").write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 40)
    problems = {name: process_import(tmp_path / name, root, "web")["problem"]
                for name in ("empty.jsonl", "crawl.warc", "other.jsonl", "dump.7z")}
    assert problems["empty.jsonl"] == "empty: no records"
    assert problems["crawl.warc"] == "a WARC file: crawls are build-corpus's input " \
                                     "(roberta build-corpus)"
    assert problems["other.jsonl"] == (
        "no usable record (1 missing_text): no text in 'text'; name the text field with "
        "--text-column; first error at line 1: no 'text' field")
    assert problems["dump.7z"].startswith("a 7-Zip archive, which cannot be read here")


def test_choose_format_respects_a_given_format(tmp_path):
    path = tmp_path / SPLIT_DUMP
    write_wiki_dump(path, english_docs(1))
    assert choose_format(path, str(path), "text").format == "text"
    auto = choose_format(path, str(path), "auto")
    assert (auto.format, auto.content) == ("wikipedia", "bz2-compressed MediaWiki XML "
                                                        "(a Wikipedia dump)")
    assert file_kinds.open_decompressed(path).read(10) == b"<mediawiki"
