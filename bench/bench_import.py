"""import-corpus per-file throughput, one core: the Wikipedia path and the plain-text path.

    python -m bench.bench_import [--mib 64]

Inputs are generated (nothing downloaded), each about --mib MiB of uncompressed text:
- wikipedia: a `pages-articles.xml.bz2` dump of articles in enwiki-like markup (an infobox
  with nested templates, bold title, piped links, refs with cite templates, a table, a file
  link with a linked caption, headings, a References section, categories), plus 10%
  redirects and 5% Talk pages, as real dumps have;
- text: one `text-blank-lines` file of documents separated by blank lines (BookCorpus /
  Stories style).
Article prose is assembled from random paragraphs of Python's own docs (corpus.sample_text),
so documents are distinct English and pass the quality rules.

Each path is timed twice in one process on one core: reader only (decompression, XML
parsing and markup cleaning / line splitting) and the full `process_import` (reader +
language ID + quality rules + content hash + MinHash + Parquet writing). MiB/s is over the
input's uncompressed bytes (and, for the dump, over the compressed file too); per core, as
the flow runs one such task per input file and core. Writes bench/out/import_throughput.json.
"""
from __future__ import annotations

import argparse
import bz2
import json
import os
import platform
import random
import shutil
import time
from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).resolve().parent / "out"


def _paragraph_pool() -> list[str]:
    from corpus.sample_text import docstring_articles, pydoc_articles

    pool = []
    for _title, paras in pydoc_articles() + docstring_articles():
        for p in paras:
            p = " ".join(p.split())
            if len(p.split()) >= 25 and p.endswith("."):
                pool.append(p)
    return pool


def _article(rng: random.Random, pool: list[str]) -> list[str]:
    return rng.sample(pool, rng.randint(4, 12))


def _wiki_markup(title: str, paras: list[str], rng: random.Random) -> str:
    first = paras[0].split(" ", 3)
    lead = f"'''{title}''' " + " ".join(
        [first[0], f"[[{first[1]} (disambiguation)|{first[1]}]]", f"[[{first[2]}]]"] + first[3:])
    out = ["{{Short description|An article}}",
           "{{Infobox thing|name=%s|founded={{start date|%d|1|1}}|website={{URL|example.org}}}}"
           % (title, rng.randint(1900, 2019)),
           lead + '<ref name="a">{{cite web|url=https://example.org/%d|title=Source}}</ref>'
           % rng.randint(0, 10**6)]
    for i, p in enumerate(paras[1:], 1):
        if i % 3 == 0:
            out.append(f"\n== Section {i} ==")
        words = p.split(" ")
        k = rng.randrange(len(words))
        words[k] = f"''{words[k]}''"
        out.append(" ".join(words) + "<ref>{{cite book|title=B|year=2001}}</ref>")
    out += ["{| class=\"wikitable\"\n|-\n! A !! B\n|-\n| 1 || {{flag|X}}\n|}",
            "[[File:Example.jpg|thumb|A caption with a [[link]].]]",
            "== References ==\n{{reflist}}\n* {{cite journal|title=J}}",
            "[[Category:Examples]]\n[[Category:Generated]]"]
    return "\n".join(out)


def make_wikipedia(path: Path, target_bytes: int, seed: int = 0) -> int:
    rng, pool = random.Random(seed), _paragraph_pool()
    size, pid = 0, 0
    with bz2.open(path, "wb", compresslevel=9) as f:
        head = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">\n'
                "<siteinfo><base>https://en.wikipedia.org/wiki/Main_Page</base></siteinfo>\n")
        f.write(head.encode())
        size += len(head)
        while size < target_bytes:
            pid += 1
            r = rng.random()
            title, ns, redirect = f"Article {pid}", 0, ""
            if r < 0.10:
                text, redirect = f"#REDIRECT [[Article {pid - 1}]]", f'<redirect title="Article {pid - 1}" />'
            else:
                text = _wiki_markup(title, _article(rng, pool), rng)
                if r < 0.15:
                    title, ns = f"Talk:Article {pid}", 1
            page = (f"<page><title>{title}</title><ns>{ns}</ns><id>{pid}</id>{redirect}"
                    f"<revision><id>{pid}</id><text xml:space=\"preserve\">{escape(text)}</text>"
                    f"</revision></page>\n").encode()
            f.write(page)
            size += len(page)
        f.write(b"</mediawiki>\n")
    return size + 13


def make_text(path: Path, target_bytes: int, seed: int = 1) -> int:
    rng, pool = random.Random(seed), _paragraph_pool()
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < target_bytes:
            doc = "\n".join(_article(rng, pool)) + "\n\n"
            f.write(doc)
            size += len(doc.encode())
    return size


def _time_reader(path: Path, fmt: str) -> tuple[float, int]:
    from corpus.importers import read_records

    t0 = time.perf_counter()
    n = sum(1 for _ in read_records(path, str(path), fmt))
    return time.perf_counter() - t0, n


def _time_full(path: Path, fmt: str, name: str, root: Path) -> tuple[float, dict]:
    from corpus.import_pipeline import process_import

    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    m = process_import(path, root, name, fmt=fmt)
    return time.perf_counter() - t0, m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=float, default=64)
    a = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, honestly
    OUT.mkdir(parents=True, exist_ok=True)
    target = int(a.mib * 2**20)
    work = OUT / "import_inputs"
    work.mkdir(exist_ok=True)
    inputs = {"wikipedia": (work / f"enwiki-bench-{a.mib:g}mib-pages-articles.xml.bz2", "wikipedia",
                            make_wikipedia),
              "text": (work / f"stories-bench-{a.mib:g}mib.txt", "text-blank-lines", make_text)}
    results = {}
    for name, (path, fmt, make) in inputs.items():
        raw_bytes_file = path.with_suffix(path.suffix + ".bytes")
        if not path.exists() or not raw_bytes_file.exists():
            raw = make(path, target)
            raw_bytes_file.write_text(str(raw))
        raw = int(raw_bytes_file.read_text())
        file_bytes = path.stat().st_size
        reader_s, records = _time_reader(path, fmt)
        full_s, m = _time_full(path, fmt, name, OUT / f"run-import-{name}")
        mib = raw / 2**20
        results[name] = {
            "input": path.name, "format": fmt, "uncompressed_mib": round(mib, 2),
            "file_mib": round(file_bytes / 2**20, 2), "records": records,
            "documents_kept": m["documents"], "counts": {k: v for k, v in m["counts"].items() if v},
            "reader_seconds": round(reader_s, 2), "full_seconds": round(full_s, 2),
            "reader_mib_per_s": round(mib / reader_s, 2),
            "full_mib_per_s_per_core": round(mib / full_s, 2),
            "full_file_mib_per_s_per_core": round(file_bytes / 2**20 / full_s, 2),
            "docs_per_s_per_core": round(records / full_s, 1),
        }
        r = results[name]
        print(f"{name:9s} {mib:6.1f} MiB ({r['file_mib']:.1f} MiB on disk), {records:,} records, "
              f"{m['documents']:,} kept | reader only {r['reader_mib_per_s']:.2f} MiB/s | "
              f"full import {r['full_mib_per_s_per_core']:.2f} MiB/s per core "
              f"({r['docs_per_s_per_core']:.0f} records/s)")
    summary = {"benchmark": "import_throughput", "cores": 1, "python": platform.python_version(),
               "machine": platform.machine(), "cpu_count": os.cpu_count(), "results": results}
    (OUT / "import_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"→ {OUT / 'import_throughput.json'}")


if __name__ == "__main__":
    main()
