"""build-corpus per-file throughput: our pipeline (cheap-first skipping) vs the baseline
"trafilatura-extract every HTML page, then filter", same input, same single core.

    python -m bench.bench_corpus_throughput [--pages 3000]

The crawl is corpus.sample_crawl.generate_crawl: about half the pages not English, a tenth
duplicates (exact copies, URL variants, near duplicates), English pages built from Python's
own docs inside news-site boilerplate. Both runs go through process_warc (one with
`prefilter=False`) and then the same global dedup; the overlap is measured on the final
documents. Also timed: bare `trafilatura.extract` on every HTML page, for reference.
Writes bench/out/corpus_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, both runs

    from corpus.config import CorpusConfig
    from corpus.dedup import deduplicate
    from corpus.warc_file import process_warc
    from corpus.sample_crawl import generate_crawl

    OUT.mkdir(parents=True, exist_ok=True)
    crawl = OUT / f"crawl-{a.pages}-{a.seed}.warc.gz"
    if not crawl.exists():
        generate_crawl(crawl, a.pages, frac_non_english=0.5, frac_duplicates=0.1, seed=a.seed)

    results = {}
    for name, cfg in [("baseline_extract_all", CorpusConfig(prefilter=False)),
                      ("pipeline_prefilter", CorpusConfig())]:
        root = OUT / f"run-{name}"
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        m = process_warc(crawl, root, cfg)
        t1 = time.perf_counter()
        rep = deduplicate(root, cfg)
        t2 = time.perf_counter()
        html_pages = m["records_read"] - sum(m["counts"][k] for k in
                                              ("not_response", "http_status_not_200", "not_html",
                                               "empty_payload", "corrupt_record", "page_too_large"))
        results[name] = {
            "seconds_process": round(t1 - t0, 2), "seconds_dedup": round(t2 - t1, 2),
            "html_pages": html_pages, "pages_per_s_per_core": round(html_pages / (t1 - t0), 1),
            "shard_docs": m["documents"], "final_docs": rep["counts"]["documents_kept"],
            "counts": {k: v for k, v in m["counts"].items() if v}, "kept_ids": rep["kept_ids"],
        }
        print(f"{name:24s} {html_pages} HTML pages in {t1 - t0:6.1f}s = "
              f"{html_pages / (t1 - t0):6.1f} pages/s/core; final docs {rep['counts']['documents_kept']}")

    # Reference: bare trafilatura.extract on every HTML page (no LID, filters, hashing).
    import trafilatura

    from corpus.html_decode import decode_html
    from corpus.warc_reader import read_warc
    with open(crawl, "rb") as f:
        pages = [decode_html(r.payload, r.content_type)[0] for r in read_warc(f) if r.outcome is None]
    t0 = time.perf_counter()
    for html in pages:
        trafilatura.extract(html)
    bare = len(pages) / (time.perf_counter() - t0)
    print(f"{'bare trafilatura.extract':24s} {bare:6.1f} pages/s/core")

    base, ours = results["baseline_extract_all"], results["pipeline_prefilter"]
    same = set(base["kept_ids"]) & set(ours["kept_ids"])
    summary = {
        "machine": {"cores_used": 1, "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "crawl": {"pages": a.pages, "file": crawl.name, "bytes": crawl.stat().st_size},
        "speedup_end_to_end": round(base["seconds_process"] / ours["seconds_process"], 2),
        "overlap_of_baseline_docs_kept": round(len(same) / max(1, len(base["kept_ids"])), 4),
        "extra_docs_vs_baseline": len(set(ours["kept_ids"]) - set(base["kept_ids"])),
        "bare_trafilatura_pages_per_s": round(bare, 1),
        **{k: {kk: vv for kk, vv in v.items() if kk != "kept_ids"} for k, v in results.items()},
    }
    print(f"speedup {summary['speedup_end_to_end']}x, overlap {summary['overlap_of_baseline_docs_kept']:.2%}")
    (OUT / "corpus_throughput.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
