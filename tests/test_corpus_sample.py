"""The bundled sample crawl: deterministic, and every planted case ends in the expected outcome."""
from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest

from corpus import outcomes
from corpus.config import CorpusConfig
from corpus.dedup import deduplicate
from corpus.extract import Extractor
from corpus.hashing import MinHasher
from corpus.warc_file import _process_candidate, process_warc
from corpus.prefilter import InFileDuplicates
from corpus.sample_crawl import generate_sample, sample_pages
from corpus.warc_reader import read_warc


def test_sample_is_byte_identical_for_same_seed(tmp_path, sample_warc):
    (tmp_path / "a").mkdir()
    out = tmp_path / "a" / sample_warc.name
    generate_sample(out, seed=0)
    assert out.read_bytes() == sample_warc.read_bytes(), "bundled sample is stale: run `make sample`"
    assert sample_warc.stat().st_size < 3_000_000


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, sample_warc):
    root = tmp_path_factory.mktemp("run")
    manifest = process_warc(sample_warc, root)
    return root, manifest


def test_outcomes_sum_to_records_read(sample_run):
    _, m = sample_run
    assert m["records_read"] == 697  # 1 warcinfo + 232 fetches x (request, response, metadata)
    assert sum(m["counts"].values()) == m["records_read"]
    assert set(m["counts"]) <= set(outcomes.ALL)
    assert m["counts"]["not_response"] == 465
    assert m["counts"]["corrupt_record"] == 1
    (err,) = m["errors"]
    assert err["file"].endswith("sample.warc.gz") and err["offset"] > 0 and err["message"]
    assert m["counts"]["http_status_not_200"] == 3
    assert m["counts"]["not_html"] == 4
    assert m["counts"]["page_too_large"] == 1
    assert m["counts"]["kept"] == m["documents"] > 100


def test_planted_cases_end_in_expected_outcomes(sample_warc):
    """Without cheap skipping, so every HTML page goes through extraction, LID and quality."""
    kinds = {p.url: p.kind for p in sample_pages(0)}
    cfg = CorpusConfig(prefilter=False)
    by_kind = defaultdict(Counter)
    with open(sample_warc, "rb") as f, Extractor() as ex:
        for item in read_warc(f):
            if item.outcome is None:
                outcome, _ = _process_candidate(item, cfg, ("en",), "s", "s", InFileDuplicates(), ex,
                                                MinHasher(), Counter(), [])
            else:
                outcome = item.outcome
            if item.url in kinds and outcome != "not_response":
                by_kind[kinds[item.url]][outcome] += 1
    assert set(by_kind["foreign"]) == {"lang_not_wanted"}          # 36 pages in 6 languages
    assert sum(by_kind["foreign"].values()) == 36
    assert set(by_kind["boilerplate"]) == {"quality_too_few_words"}
    assert by_kind["article_wrong_lang"] == {"kept": 1}            # declares lang="de", is English
    assert by_kind["bad_charset"] == {"kept": 2}
    assert by_kind["huge"] == {"page_too_large": 1}
    assert by_kind["empty"] == {"empty_payload": 1}
    assert by_kind["empty_html"] == {"extraction_empty": 1}
    arts = by_kind["article"]
    assert arts["kept"] / sum(arts.values()) > 0.9                 # English prose passes


def test_non_english_filtered_and_dups_removed(sample_run):
    root, _ = sample_run
    report = deduplicate(root)
    docs = pq.read_table(root / "corpus" / "documents").to_pylist()
    assert len(docs) == report["counts"]["documents_kept"]
    assert all(d["lang"] == "en" for d in docs)
    assert not any(d["host"].endswith((".de", ".fr", ".es", ".it", ".nl", ".pt")) for d in docs)
    assert not any(d["host"] == "syndication.example.com" and d["url"] in () for d in docs)
    assert len({d["content_hash"] for d in docs}) == len(docs)
    assert report["counts"]["exact_duplicates"] > 0 and report["counts"]["near_duplicates"] > 0
