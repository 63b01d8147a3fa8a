"""Character-level BPE (paper §4.4's BERT-style 30K vocabulary, scaled down): RoBERTa ids,
unicode characters as the alphabet with `<unk>` and no byte fallback, offsets, idempotence,
and shard-corpus taking it unchanged."""
from __future__ import annotations

from pathlib import Path

import pytest

from corpus import bpe
from corpus.char_bpe import train_char_tokenizer
from corpus.sharding import shard_corpus
from tests._pretrain_shards import sample_shards_root


@pytest.fixture(scope="module")
def char_root(tmp_path_factory) -> Path:
    base = sample_shards_root(tmp_path_factory.getbasetemp())
    root = tmp_path_factory.mktemp("char-bpe")
    (root / "corpus").symlink_to(base / "corpus")
    return root


def test_char_bpe_ids_alphabet_and_unk(char_root):
    info = train_char_tokenizer(char_root, vocab_size=600, limit_alphabet=200)
    assert info["vocab_size"] == 600 and info["mask_id"] == 599 and info["kind"] == "char-bpe"
    tok = bpe.load_tokenizer(char_root)   # the RoBERTa special ids are checked there
    vocab = tok.get_vocab()
    # No byte alphabet: a character-level vocabulary, so an unseen character is <unk>.
    assert "Ġ" not in vocab and "\u2603" not in vocab
    enc = tok.encode("Hello world \u2603.", add_special_tokens=False)
    assert bpe.UNK_ID in enc.ids
    text = "Hello world."
    enc = tok.encode(text, add_special_tokens=False)
    assert "".join(text[a:b] for a, b in enc.offsets) == "Helloworld."
    assert tok.decode(enc.ids) == "Hello world."
    assert tok.encode("a b", add_special_tokens=True).ids[0] == bpe.BOS_ID
    # Same parameters: nothing is retrained.
    again = train_char_tokenizer(char_root, vocab_size=600, limit_alphabet=200)
    assert again["tokenizer_sha256"] == info["tokenizer_sha256"]


def test_char_bpe_shards(char_root):
    train_char_tokenizer(char_root, vocab_size=600, limit_alphabet=200)
    m = shard_corpus(char_root, fmt="full-sentences", block_size=64, valid_fraction=0.1,
                     workers=1)
    assert m["vocab_size"] == 600 and m["splits"]["train"]["blocks"] > 0
