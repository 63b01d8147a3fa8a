"""import-corpus readers and per-file step on small real-format fixtures built here: a
Wikipedia xml.bz2 (article, redirect, Talk page, markup), a tar.xz of text files with a
nested archive and a broken member, JSONL with a broken line, Parquet, plain text."""
import bz2
import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.import_pipeline import IMPORT_OUTCOMES, process_import
from corpus.importers import Columns, detect_format, read_records
from corpus.sample_text import docstring_articles
from corpus.wikitext import wiki_to_text


def english_docs(n: int, offset: int = 0) -> list[str]:
    """n distinct English prose documents (>= 80 words) that pass the quality rules."""
    out = []
    for _title, paras in docstring_articles()[offset:]:
        text = "\n\n".join(p for p in paras if p.rstrip().endswith((".", ":", ")")))
        if len(text.split()) >= 120:
            out.append(" ".join(text.split()[:400]).replace(". ", ".\n"))
        if len(out) == n:
            return out
    raise AssertionError("not enough prose")


WIKI_NS = "http://www.mediawiki.org/xml/export-0.10/"


def wiki_page(title: str, ns: int, pid: int, text: str, redirect: str | None = None) -> str:
    from xml.sax.saxutils import escape

    red = f'<redirect title="{escape(redirect)}" />' if redirect else ""
    return (f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>{pid}</id>{red}"
            f"<revision><id>{pid * 10}</id><text bytes=\"{len(text)}\" xml:space=\"preserve\">"
            f"{escape(text)}</text></revision></page>\n")


def wiki_article_markup(prose: str) -> str:
    paras = prose.split("\n")
    body = "\n".join(f"[[Python (language)|{p}]]" if i == 0 else p for i, p in enumerate(paras[:3]))
    return ("{{Infobox software|name=X|developer={{nowrap|PSF}}}}\n"
            f"'''Example''' is described here.<ref name=a>{{{{cite web|url=http://x}}}}</ref>\n"
            f"{body}\n\n== History ==\n" + "\n".join(paras[3:]) +
            "\n{| class=\"wikitable\"\n|-\n| cell || {{flag|X}}\n|}\n"
            "[[File:Logo.png|thumb|A logo by [[Someone]]]]\n"
            "== References ==\n{{reflist}}\n* a citation\n[[Category:Examples]]\n")


def write_wiki_dump(path, articles: list[str], broken_tail: bool = False) -> None:
    pages = ["<mediawiki xmlns=\"%s\" version=\"0.10\" xml:lang=\"en\">\n"
             "<siteinfo><sitename>Wikipedia</sitename>"
             "<base>https://en.wikipedia.org/wiki/Main_Page</base></siteinfo>\n" % WIKI_NS]
    for i, prose in enumerate(articles):
        pages.append(wiki_page(f"Article {i}", 0, 100 + i, wiki_article_markup(prose)))
    pages.append(wiki_page("Old name", 0, 900, "#REDIRECT [[Article 0]]", redirect="Article 0"))
    pages.append(wiki_page("Talk:Article 0", 1, 901, english_docs(1, 40)[0]))
    pages.append(wiki_page("Stub", 0, 902, "'''Stub''' is short."))
    xml = "".join(pages) + ("<page><title>Broken</ti" if broken_tail else "</mediawiki>\n")
    path.write_bytes(bz2.compress(xml.encode()))


def write_owt_archive(path, docs: list[str]) -> None:
    """OWT layout: an outer tar.xz of `*.xz` subsets, each a tar.xz of .txt files, plus a
    plain member, a broken nested archive and a non-UTF-8 member."""
    def tar_bytes(files: dict[str, bytes], mode: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    half = len(docs) // 2
    subset = tar_bytes({f"{i:07d}-doc.txt": d.encode() for i, d in enumerate(docs[:half])}, "w:xz")
    outer = {"openwebtext/urlsf_subset00-1_data.xz": subset,
             "openwebtext/urlsf_subset00-2_data.xz": b"this is not an xz archive",
             "openwebtext/latin1.txt": "caf\xe9 cr\xe8me".encode("latin-1")}
    outer |= {f"openwebtext/plain-{i}.txt": d.encode() for i, d in enumerate(docs[half:])}
    path.write_bytes(tar_bytes(outer, "w:xz"))


def check_manifest(m: dict) -> None:
    assert sum(m["counts"].values()) == m["records_read"]
    assert set(IMPORT_OUTCOMES) <= set(m["counts"])


def shard_rows(root, m):
    return pq.read_table(root / m["shard"]).to_pylist()


def test_detect_format():
    assert detect_format("enwiki-20190101-pages-articles1.xml-p10p30302.bz2") == "wikipedia"
    assert detect_format("enwiki-20190101-pages-articles1.xml.bz2") == "wikipedia"
    assert detect_format("a.jsonl.gz") == "jsonl"
    assert detect_format("openwebtext.tar.xz") == "owt"
    assert detect_format("urlsf_subset00-1_data.xz") == "owt"
    assert detect_format("x.parquet") == "parquet"
    assert detect_format("book.txt") == "text"


def test_wiki_markup_cleaner():
    text = wiki_to_text(
        "{{Infobox person|name=Ada {{nowrap|King}}|birth={{birth date|1815|12|10}}}}\n"
        "'''Ada''' was an [[England|English]] [[mathematician]]s and [[writer]].<ref name=a>"
        "{{cite web|url=x}}</ref><ref name=b/> See [http://example.com the site] and "
        "[http://bare.example]. <!-- hidden -->\n== Early life ==\nBorn in [[London]].\n"
        "{| class=wikitable\n|-\n| a || {{flag|b}}\n|}\n"
        "[[File:Ada.jpg|thumb|Portrait by [[Margaret Carpenter]]]]\n* Item with ''italic''.\n"
        "&nbsp;<small>small</small>\n== References ==\n{{reflist}}\n* cite\n"
        "[[Category:1815 births]]\n[[de:Ada Lovelace]]")
    assert text.startswith("Ada was an English mathematicians and writer. See the site and .")
    assert "Early life\n\nBorn in London." in text
    for gone in ("{{", "}}", "[[", "]]", "'''", "cite", "Infobox", "Category", "File:",
                 "Margaret", "hidden", "References", "wikitable", "<", "flag"):
        assert gone not in text, gone
    assert "Item with italic." in text and "small" in text


def test_wikipedia_dump(tmp_path):
    docs = english_docs(3)
    dump = tmp_path / "enwiki-test-pages-articles1.xml.bz2"
    write_wiki_dump(dump, docs)
    m = process_import(dump, tmp_path / "run", "wikipedia")
    check_manifest(m)
    assert m["records_read"] == 6
    assert m["counts"]["kept"] == 3
    assert m["counts"]["wiki_redirect"] == 1
    assert m["counts"]["wiki_non_article"] == 1
    assert m["counts"]["quality_too_few_words"] == 1
    rows = shard_rows(tmp_path / "run", m)
    assert {r["corpus_name"] for r in rows} == {"wikipedia"}
    assert rows[0]["url"] == "https://en.wikipedia.org/wiki/Article_0"
    assert rows[0]["title"] == "Article 0"
    assert "[[" not in rows[0]["text"] and "{{" not in rows[0]["text"]
    assert "A logo" not in rows[0]["text"] and "a citation" not in rows[0]["text"]
    assert docs[0].split("\n")[5] in rows[0]["text"]
    # Rerun: skipped, same manifest.
    again = process_import(dump, tmp_path / "run", "wikipedia")
    assert again["skipped"] and again["counts"] == m["counts"]


def test_wikipedia_invalid_xml_counted_rest_imported(tmp_path):
    dump = tmp_path / "broken-pages-articles.xml.bz2"
    write_wiki_dump(dump, english_docs(2), broken_tail=True)
    m = process_import(dump, tmp_path / "run", "wikipedia")
    check_manifest(m)
    assert m["counts"]["kept"] == 2
    assert m["counts"]["bad_record"] == 1
    (err,) = m["errors"]
    assert err["file"] == str(dump) and "invalid XML at line" in err["message"]


def test_owt_archive_nested_and_broken_members(tmp_path):
    docs = english_docs(4)
    archive = tmp_path / "openwebtext.tar.xz"
    write_owt_archive(archive, docs)
    m = process_import(archive, tmp_path / "run", "openwebtext")
    check_manifest(m)
    assert m["counts"]["kept"] == 4
    assert m["counts"]["bad_record"] == 2  # the non-archive .xz and the latin-1 member
    places = sorted(e["where"] for e in m["errors"])
    assert places == ["member openwebtext/latin1.txt", "member openwebtext/urlsf_subset00-2_data.xz"]
    rows = shard_rows(tmp_path / "run", m)
    assert sorted(r["text"] for r in rows) == sorted(docs)
    assert any("urlsf_subset00-1_data.xz/0000000-doc.txt" in r["source"] for r in rows)


def test_owt_truncated_archive(tmp_path):
    archive = tmp_path / "cut.tar.xz"
    write_owt_archive(archive, english_docs(4))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 3 // 4])
    m = process_import(archive, tmp_path / "run", "openwebtext")
    check_manifest(m)
    assert m["counts"]["bad_record"] >= 1
    assert any("damaged" in e["message"] or "truncated" in e["message"] for e in m["errors"])


def test_jsonl_broken_line_and_missing_field(tmp_path):
    docs = english_docs(3)
    path = tmp_path / "news.jsonl"
    lines = [json.dumps({"id": "a", "content": docs[0], "url": "https://news.example/a",
                         "title": "A"}),
             "{this is not json",
             json.dumps({"id": "b", "body": docs[1]}),
             "",
             json.dumps({"id": "c", "content": docs[2]}),
             json.dumps([1, 2])]
    path.write_text("\n".join(lines) + "\n")
    m = process_import(path, tmp_path / "run", "news", columns=Columns(text="content"))
    check_manifest(m)
    assert m["records_read"] == 5
    assert m["counts"]["kept"] == 2
    assert m["counts"]["bad_record"] == 2
    assert m["counts"]["missing_text"] == 1
    assert [e["where"] for e in m["errors"]] == ["line 2", "line 3", "line 6"]
    assert "not JSON" in m["errors"][0]["message"]
    rows = shard_rows(tmp_path / "run", m)
    assert rows[0]["url"] == "https://news.example/a" and rows[0]["host"] == "news.example"


def test_parquet_text_column_and_missing_column(tmp_path):
    docs = english_docs(3)
    path = tmp_path / "books.parquet"
    pq.write_table(pa.table({"text": docs + [None], "id": ["x", "y", "z", "w"]}), path)
    m = process_import(path, tmp_path / "run", "books")
    check_manifest(m)
    assert (m["records_read"], m["counts"]["kept"], m["counts"]["missing_text"]) == (4, 3, 1)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"body": docs}), other)
    m2 = process_import(other, tmp_path / "run", "books")
    check_manifest(m2)
    assert m2["counts"]["missing_text"] == 3
    assert "no column 'text'" in m2["errors"][0]["message"]


@pytest.mark.parametrize("blank_lines", [False, True])
def test_plain_text(tmp_path, blank_lines):
    docs = english_docs(3)
    path = tmp_path / "stories.txt"
    path.write_text("\n\n".join(docs) + "\n")
    fmt = "text-blank-lines" if blank_lines else "text"
    records = list(read_records(path, str(path), fmt))
    assert len(records) == (3 if blank_lines else 1)
    m = process_import(path, tmp_path / "run", "stories", fmt=fmt)
    check_manifest(m)
    assert m["counts"]["kept"] == len(records)
