"""Byte-level BPE: RoBERTa ids, files transformers can load, streaming training, reuse."""
import json

import pytest
from tests._shards_corpus import english_documents, write_corpus
from tokenizers import Tokenizer

from corpus import bpe

TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "  leading spaces, tabs\tand\nnewlines; numbers 3.14159 and 2019-07-26.",
    "Unicode: café, naïve, Zürich, 東京, emoji 🙂 and math ∑.",
    "A <mask> in the middle and at the end <mask>",
    "Literal specials <s> and </s> and <pad> in text.",
    "",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    write_corpus(root, english_documents(), n_parts=3)
    info = bpe.train_tokenizer(root, vocab_size=1000)
    return root, info


def test_special_ids_and_files(trained):
    root, info = trained
    tok = bpe.load_tokenizer(root)
    for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"]):
        assert tok.token_to_id(t) == i
    assert info["vocab_size"] == tok.get_vocab_size(with_added_tokens=True) == 1000
    assert tok.token_to_id("<mask>") == info["mask_id"] == 999
    d = root / "tokenizer"
    for f in ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer_info.json"]:
        assert (d / f).is_file(), f
    vocab = json.loads((d / "vocab.json").read_text())
    assert vocab["<mask>"] == 999 and vocab["<s>"] == 0 and len(vocab) == 1000
    assert not list(d.glob(".*.tmp-*"))
    assert info["documents"] == len(english_documents())


def test_post_processor_is_roberta(trained):
    tok = bpe.load_tokenizer(trained[0])
    one = tok.encode("Hello world")
    assert one.ids[0] == 0 and one.ids[-1] == 2
    pair = tok.encode("Hello", "world")
    body_a = tok.encode("Hello", add_special_tokens=False).ids
    body_b = tok.encode("world", add_special_tokens=False).ids
    assert pair.ids == [0, *body_a, 2, 2, *body_b, 2]
    # No prefix space, like roberta-base: "Hello" at the start is not " Hello".
    assert tok.encode("Hello", add_special_tokens=False).tokens[0][0] != "Ġ"


def test_transformers_loads_same_ids(trained):
    from transformers import AddedToken, RobertaTokenizerFast

    root = trained[0]
    ours = bpe.load_tokenizer(root)
    d = root / "tokenizer"
    from_dir = RobertaTokenizerFast.from_pretrained(str(d))
    # roberta-base's configuration strips the space before <mask> (lstrip=True), as ours does.
    from_files = RobertaTokenizerFast(vocab=str(d / "vocab.json"), merges=str(d / "merges.txt"),
                                      mask_token=AddedToken("<mask>", lstrip=True, rstrip=False))
    assert from_dir.mask_token_id == from_files.mask_token_id == 999
    assert from_dir.pad_token_id == 1 and from_dir.bos_token_id == 0
    for text in TEXTS:
        want = ours.encode(text).ids
        assert from_dir(text)["input_ids"] == want, text
        assert from_files(text)["input_ids"] == want, text
    for a, b in zip(TEXTS[:-2], TEXTS[1:-1]):  # (HF treats an empty second text as none)
        want = ours.encode(a, b).ids
        assert from_dir(a, b)["input_ids"] == want
        assert from_files(a, b)["input_ids"] == want
    assert from_dir.decode(ours.encode(TEXTS[2]).ids, skip_special_tokens=True) == TEXTS[2]


def test_fewer_merges_than_asked_keeps_mask_last(tmp_path):
    write_corpus(tmp_path, english_documents(3), n_parts=1)
    with pytest.warns(UserWarning, match="fewer than the 50265 asked for"):
        info = bpe.train_tokenizer(tmp_path, vocab_size=50265, min_frequency=2)
    assert info["vocab_size"] < 50265
    tok = bpe.load_tokenizer(tmp_path)
    assert tok.token_to_id("<mask>") == info["vocab_size"] - 1 == info["mask_id"]
    assert info["params"]["requested_vocab_size"] == 50265


def test_sample_fraction_is_deterministic_and_rerun_skips(tmp_path):
    write_corpus(tmp_path, english_documents(), n_parts=2)
    a = bpe.train_tokenizer(tmp_path, vocab_size=600, sample_fraction=0.5)
    assert 0 < a["documents"] < len(english_documents())
    path = tmp_path / "tokenizer" / "tokenizer.json"
    mtime = path.stat().st_mtime_ns
    again = bpe.train_tokenizer(tmp_path, vocab_size=600, sample_fraction=0.5)
    assert again == a and path.stat().st_mtime_ns == mtime  # skipped: same parameters
    b = bpe.train_tokenizer(tmp_path, vocab_size=600, sample_fraction=0.5, overwrite=True)
    assert b["tokenizer_sha256"] == a["tokenizer_sha256"] and b["documents"] == a["documents"]
    c = bpe.train_tokenizer(tmp_path, vocab_size=600, sample_fraction=1.0)
    assert c["documents"] == len(english_documents())


def test_rerun_rebuilds_a_lost_or_damaged_tokenizer(tmp_path):
    # The info file says a tokenizer was written; a rerun trusts it only if the files agree.
    write_corpus(tmp_path, english_documents(), n_parts=1)
    info = bpe.train_tokenizer(tmp_path, vocab_size=600)
    path = tmp_path / "tokenizer" / "tokenizer.json"
    good = path.read_bytes()
    path.unlink()
    with pytest.warns(UserWarning, match="tokenizer.json missing under .*; training it again"):
        assert bpe.train_tokenizer(tmp_path, vocab_size=600)["tokenizer_sha256"] == info["tokenizer_sha256"]
    assert path.read_bytes() == good
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a readable tokenizer .*rerun train-tokenizer"):
        bpe.load_tokenizer(tmp_path)
    with pytest.warns(UserWarning, match="is not a readable tokenizer"):
        bpe.train_tokenizer(tmp_path, vocab_size=600)
    assert path.read_bytes() == good


def test_bad_documents_are_counted_and_empty_corpus_fails(tmp_path):
    docs = english_documents(5) + ["", "   \n", b"bad \xff\xfe bytes", b"surrogate \xed\xa0\x80 x"]
    write_corpus(tmp_path / "a", docs, n_parts=1)
    info = bpe.train_tokenizer(tmp_path / "a", vocab_size=400)
    assert info["documents"] == 5
    assert info["skipped_empty"] == 2 and info["skipped_invalid_utf8"] == 2
    write_corpus(tmp_path / "b", ["", " "], n_parts=1)
    with pytest.raises(ValueError, match="empty corpus"):
        bpe.train_tokenizer(tmp_path / "b", vocab_size=400)
    (tmp_path / "c" / "corpus" / "documents").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty corpus"):
        bpe.train_tokenizer(tmp_path / "c", vocab_size=400)
    with pytest.raises(FileNotFoundError, match="build-corpus"):
        bpe.train_tokenizer(tmp_path / "d", vocab_size=400)


def _tiny_gpt2_files(d):
    """A hand-made GPT-2 style pair: 256 byte symbols + a few merges, no RoBERTa specials."""
    alphabet = sorted(bpe.pre_tokenizers.ByteLevel.alphabet())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "c"), ("a", "t")]
    vocab = {s: i for i, s in enumerate(alphabet)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    d.mkdir(parents=True)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    return vocab


def test_use_existing_gpt2_style_files(tmp_path):
    from transformers import RobertaTokenizerFast

    src = tmp_path / "gpt2"
    vocab = _tiny_gpt2_files(src)
    info = bpe.use_existing_tokenizer(tmp_path / "run", src)
    tok = bpe.load_tokenizer(tmp_path / "run")
    assert info["vocab_size"] == len(vocab) + 5 and info["mask_id"] == len(vocab) + 4
    enc = tok.encode("in the cat", add_special_tokens=False)
    assert enc.tokens == ["in", "Ġthe", "Ġc", "at"]
    assert enc.ids == [vocab[t] + 4 for t in enc.tokens]  # GPT-2 ids shifted past specials
    hf = RobertaTokenizerFast.from_pretrained(str(tmp_path / "run" / "tokenizer"))
    assert hf("in the cat")["input_ids"] == tok.encode("in the cat").ids
    # A RoBERTa-style directory (ours) is taken as is, ids unchanged.
    info2 = bpe.use_existing_tokenizer(tmp_path / "run2", tmp_path / "run" / "tokenizer")
    assert info2["tokenizer_sha256"] == info["tokenizer_sha256"]


def test_existing_with_misplaced_specials_is_an_error(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "vocab.json").write_text(json.dumps({"a": 0, "<s>": 1, "<pad>": 2, "</s>": 3,
                                              "<unk>": 4, "<mask>": 5}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ValueError, match="<s>"):
        bpe.use_existing_tokenizer(tmp_path / "run", d)
    with pytest.raises(FileNotFoundError):
        bpe.use_existing_tokenizer(tmp_path / "run", tmp_path / "nothing")


def test_tokenizer_json_round_trip(trained):
    tok = bpe.load_tokenizer(trained[0])
    again = Tokenizer.from_str(tok.to_str())
    assert again.encode(TEXTS[0]).ids == tok.encode(TEXTS[0]).ids
