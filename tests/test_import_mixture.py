"""Mixture weights per source: train-tokenizer and shard-corpus up-sample a source, the
shard manifest reports content tokens per source, fractional weights sample by doc hash."""
import pytest

from corpus.bpe import train_tokenizer
from corpus.dedup import deduplicate
from corpus.import_pipeline import process_import
from corpus.mixture import copies, parse_mix
from corpus.sharding import shard_corpus
from tests.test_import_readers import english_docs, write_owt_archive, write_wiki_dump


def test_parse_and_copies():
    assert parse_mix("wikipedia=2,cc-news=1") == {"wikipedia": 2.0, "cc-news": 1.0}
    assert parse_mix("") is None and parse_mix(None) is None
    for bad in ("wikipedia", "wikipedia=-1", "wikipedia=x", "=2"):
        with pytest.raises(ValueError):
            parse_mix(bad)
    ids = [f"{i:016x}" for i in range(4000)]
    assert all(copies(d, "wikipedia", {"wikipedia": 2}) == 2 for d in ids[:50])
    assert all(copies(d, "other", {"wikipedia": 2}) == 1 for d in ids[:50])
    assert all(copies(d, None, {"cc-news": 0}) == 0 for d in ids[:50])  # no column = cc-news
    half = [copies(d, "owt", {"owt": 1.5}) for d in ids]
    assert set(half) == {1, 2} and abs(sum(half) / len(ids) - 1.5) < 0.03
    assert half == [copies(d, "owt", {"owt": 1.5}) for d in ids]  # deterministic
    assert half != [copies(d, "owt", {"owt": 1.5}, seed=1) for d in ids]


@pytest.fixture(scope="module")
def two_source_root(tmp_path_factory):
    d = tmp_path_factory.mktemp("mix")
    root = d / "run"
    write_wiki_dump(d / "enwiki-pages-articles.xml.bz2", english_docs(4))
    write_owt_archive(d / "owt.tar.xz", english_docs(4, offset=30))
    process_import(d / "enwiki-pages-articles.xml.bz2", root, "wikipedia")
    process_import(d / "owt.tar.xz", root, "openwebtext")
    deduplicate(root)
    return root


def test_mixture_in_tokenizer_and_shards(two_source_root):
    root = two_source_root
    plain = train_tokenizer(root, vocab_size=400, min_frequency=2)
    mixed = train_tokenizer(root, vocab_size=400, min_frequency=2, mix={"wikipedia": 2})
    assert mixed["params"]["mix"] == {"wikipedia": 2.0} and "mix" not in plain["params"]
    assert mixed["chars_by_source"]["wikipedia"] == 2 * plain["chars_by_source"]["wikipedia"]
    assert mixed["chars_by_source"]["openwebtext"] == plain["chars_by_source"]["openwebtext"]

    base = shard_corpus(root, block_size=64, valid_fraction=0.0, workers=1)
    assert base["mix"] is None
    tokens = base["tokens_by_source"]
    assert set(tokens) == {"wikipedia", "openwebtext"} and all(v > 0 for v in tokens.values())
    assert sum(tokens.values()) == base["splits"]["train"]["content_tokens"]

    up = shard_corpus(root, block_size=64, valid_fraction=0.0, workers=1,
                      mix="wikipedia=2,openwebtext=1")
    assert up["mix"] == {"wikipedia": 2.0, "openwebtext": 1.0}
    assert up["tokens_by_source"]["wikipedia"] == 2 * tokens["wikipedia"]
    assert up["tokens_by_source"]["openwebtext"] == tokens["openwebtext"]
    assert up["splits"]["train"]["content_tokens"] == sum(up["tokens_by_source"].values())
    assert up["splits"]["train"]["documents"] == base["splits"]["train"]["documents"] + 4

    dropped = shard_corpus(root, block_size=64, valid_fraction=0.0, workers=1,
                           mix={"openwebtext": 0})
    assert set(dropped["tokens_by_source"]) == {"wikipedia"}
    assert dropped["skipped"]["mixture_not_sampled"] == 4

    # a source no document has is most likely a typo: it changes nothing, so say so
    with pytest.warns(UserWarning, match="train-tokenizer: --mix names 'wiki', but no document"):
        train_tokenizer(root, vocab_size=400, min_frequency=2, mix={"wiki": 2})
    with pytest.warns(UserWarning, match="shard-corpus: --mix names 'wiki', but no document"):
        shard_corpus(root, block_size=64, valid_fraction=0.0, workers=1, mix={"wiki": 2})
