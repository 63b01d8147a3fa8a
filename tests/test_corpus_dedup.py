"""Global dedup: planted duplicates go, representatives follow the rule, and the corpus does
not depend on how the crawl was split into files or in which order shards were written."""
import datetime as dt

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpus.config import CorpusConfig
from corpus.dedup import connected_components, deduplicate, near_duplicate_pairs
from corpus.warc_file import process_warc
from corpus.sample_crawl import generate_pages, write_warc


def corpus_rows(root):
    t = pq.read_table(root / "corpus" / "documents")
    return [(r["doc_id"], r["url"], r["crawl_date"], r["text"]) for r in t.to_pylist()]


def build(root, files, cfg=None):
    for f in files:
        process_warc(f, root, cfg)
    return deduplicate(root, cfg)


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    d = tmp_path_factory.mktemp("crawl")
    pages = generate_pages(150, frac_non_english=0.2, frac_duplicates=0.25, seed=7)
    one = d / "one.warc.gz"
    write_warc(one, pages, seed=7)
    # The same records split over files two different ways, written in different orders.
    splits = {}
    for name, parts in {"rr3": [pages[i::3] for i in range(3)],
                        "halves_rev": [pages[75:][::-1], pages[:75][::-1]]}.items():
        files = []
        for k, part in enumerate(parts):
            files.append(d / name / f"part{k}.warc.gz")
            write_warc(files[-1], part, seed=7)
        splits[name] = files
    return d, one, splits, pages


def test_result_independent_of_file_split_and_order(tmp_path, crawl):
    _, one, splits, _ = crawl
    ref = build(tmp_path / "one", [one])
    rows = corpus_rows(tmp_path / "one")
    assert ref["counts"]["documents_kept"] == len(rows) > 30
    for name, files in splits.items():
        rep = build(tmp_path / name, files[::-1])
        assert corpus_rows(tmp_path / name) == rows, name
        assert rep["kept_ids"] == ref["kept_ids"]
    # Clusters list what reached the shards; in-file skipping depends on which pages share a
    # file, so compare them with skipping off.
    off = CorpusConfig(prefilter=False)
    ref = build(tmp_path / "one_off", [one], off)
    rep = build(tmp_path / "rr3_off", splits["rr3"][::-1], off)
    assert rep["clusters"] == ref["clusters"] and rep["kept_ids"] == ref["kept_ids"]


def test_planted_duplicates_removed_with_rule_representative(tmp_path, crawl):
    _, one, _, pages = crawl
    report = build(tmp_path / "r", [one])
    shard = pq.read_table(next((tmp_path / "r" / "corpus" / "shards").glob("*.parquet"))).to_pylist()
    by_id = {r["doc_id"]: r for r in shard}
    docs = corpus_rows(tmp_path / "r")
    kept_urls = {u for _, u, _, _ in docs}
    # Every planted exact/URL duplicate that reached the shard is clustered; near duplicates
    # (one word changed, one sentence added) sit at Jaccard 0.8-0.95, so LSH at 0.8 finds most.
    in_shard = {r["url"] for r in shard}
    clustered = {by_id[m]["url"] for c in report["clusters"] for m in c["members"]}
    exact = {p.url for p in pages if p.kind in ("exact_dup", "url_dup")} & in_shard
    near = {p.url for p in pages if p.kind == "near_dup"} & in_shard
    assert exact <= clustered
    assert len(near & clustered) >= 0.8 * len(near) > 0
    for c in report["clusters"]:
        members = [by_id[m] for m in c["members"]]
        best = min(members, key=lambda r: (r["crawl_date"], r["doc_id"]))
        assert c["kept"] == best["doc_id"]
        assert sum(m["url"] in kept_urls for m in members) == 1
    # Exact copies in the same file were already skipped before extraction.
    assert report["counts"]["near_duplicates"] > 0


def test_earlier_copy_is_the_representative(tmp_path):
    """An exact copy dated before its original, later in the file: the copy is kept, and
    in-file skipping must not skip it."""
    pages = generate_pages(12, frac_non_english=0, frac_duplicates=0, seed=1)
    orig = pages[3]
    copy = type(orig)(url="https://mirror.example.com/copy", body=orig.body,
                      date=orig.date - dt.timedelta(days=1), kind="exact_dup")
    write_warc(tmp_path / "c.warc.gz", pages + [copy], seed=1)
    build(tmp_path / "root", [tmp_path / "c.warc.gz"])
    urls = {u for _, u, _, _ in corpus_rows(tmp_path / "root")}
    assert copy.url in urls and orig.url not in urls


def test_prefilter_does_not_change_the_corpus(tmp_path, sample_warc, crawl):
    _, one, _, _ = crawl
    for files in ([sample_warc], [one]):
        on = build(tmp_path / "on", files)
        off = build(tmp_path / "off", files, CorpusConfig(prefilter=False))
        assert corpus_rows(tmp_path / "on") == corpus_rows(tmp_path / "off")
        assert on["kept_ids"] == off["kept_ids"]
        for d in ("on", "off"):
            for p in (tmp_path / d).rglob("*"):
                p.unlink() if p.is_file() else None


def test_skip_if_done_and_atomic_outputs(tmp_path, sample_warc):
    m1 = process_warc(sample_warc, tmp_path)
    shard = next((tmp_path / "corpus" / "shards").glob("*.parquet"))
    mtime = shard.stat().st_mtime_ns
    m2 = process_warc(sample_warc, tmp_path)
    assert m2.get("skipped") and m2["counts"] == m1["counts"] and shard.stat().st_mtime_ns == mtime
    # A shard without its manifest (killed between the two writes) is redone, not trusted.
    (tmp_path / "corpus" / "manifests" / f"{m1['input_id']}.json").unlink()
    (shard.parent / f".{shard.name}.tmp-deadbeef").write_bytes(b"half a shard")  # a killed run's
    assert not process_warc(sample_warc, tmp_path).get("skipped")
    deduplicate(tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    # Shards without a manifest are not read by dedup.
    (tmp_path / "corpus" / "shards" / "orphan.parquet").write_bytes(shard.read_bytes())
    assert deduplicate(tmp_path)["shards"] == [shard.name]


def test_components_and_lsh_on_planted_signatures():
    rng = np.random.default_rng(0)
    n, perm = 2000, 128
    sig = rng.integers(0, 2**32, size=(n, perm), dtype=np.uint64).astype(np.uint32)
    for base, dup in [(10, 500), (10, 900), (40, 41), (1500, 1999)]:
        sig[dup] = sig[base]
        sig[dup, rng.choice(perm, 10, replace=False)] = 7  # ~92% of the signature shared
    a, b = near_duplicate_pairs(sig, 0.8)
    labels = connected_components(n, a, b)
    assert labels[500] == labels[900] == 10 and labels[41] == 40 and labels[1999] == 1500
    assert (labels == np.arange(n)).sum() == n - 4
    # A chain is one component labelled by its smallest member, whatever the edge order.
    assert connected_components(5, [3, 2, 1], [4, 3, 2]).tolist() == [0, 1, 1, 1, 1]
    assert connected_components(5, [1, 2, 3], [2, 3, 4]).tolist() == [0, 1, 1, 1, 1]
