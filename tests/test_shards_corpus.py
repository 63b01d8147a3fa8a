"""shard-corpus end to end on a real-text corpus, and both ways of reading the shards."""
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests._shards_corpus import english_documents, write_corpus

from corpus import bpe
from corpus.sharding import choose_dtype, is_valid, read_manifest, shard_corpus
from training.shard_reader import ShardReader, load_manifest

T = 64  # small blocks: many documents and sentences longer than a block


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    docs = english_documents()
    # Oddities: an empty doc, whitespace only, invalid UTF-8, a literal special token.
    texts = docs[:40] + ["", "  \n ", b"broken \xff bytes", "Says <s> and </s> <mask> aloud."] \
        + docs[40:]
    write_corpus(root, texts, n_parts=3)
    bpe.train_tokenizer(root, vocab_size=1000)
    return root


def _fresh(src, dst):
    shutil.copytree(src / "corpus", dst / "corpus")
    shutil.copytree(src / "tokenizer", dst / "tokenizer")
    return dst


def _documents(root):
    t = pq.read_table(root / "corpus" / "documents")
    return [(d, x) for d, x in zip(t.column("doc_id").to_pylist(),
                                   t.column("text").cast("binary").to_pylist())]


def _blocks(root, split):
    files = sorted((root / "shards" / split).glob("part-*.parquet"))
    return pq.read_table(files) if files else None


@pytest.mark.parametrize("fmt", ["full-sentences", "doc-sentences"])
def test_conservation_every_token_once_in_order(corpus_root, tmp_path, fmt):
    root = _fresh(corpus_root, tmp_path)
    m = shard_corpus(root, fmt=fmt, block_size=T, valid_fraction=0.2, workers=1)
    tok = bpe.load_tokenizer(root)
    tok.encode_special_tokens = True
    docs = _documents(root)
    assert m["skipped"] == {"empty_document": 2, "invalid_utf8": 1}
    for split in ("train", "valid"):
        want = []
        n_docs = 0
        for doc_id, raw in docs:
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                continue
            if not text.strip() or is_valid(doc_id, 0.2) != (split == "valid"):
                continue
            want += tok.encode(text, add_special_tokens=False).ids + [2]
            n_docs += 1
        t = _blocks(root, split)
        ids = np.stack(t.column("input_ids").to_numpy(zero_copy_only=False))
        lengths = t.column("length").to_numpy()
        assert ids.dtype == np.uint16 and ids.shape[1] == T
        assert (ids[:, 0] == 0).all() and (lengths <= T).all()
        got = np.concatenate([row[1:n] for row, n in zip(ids, lengths)])
        np.testing.assert_array_equal(got, np.array(want))
        for row, n in zip(ids, lengths):
            assert (row[n:] == 1).all()
        s = m["splits"][split]
        assert s["documents"] == n_docs and s["blocks"] == len(t)
        assert s["tokens"] == int(lengths.sum()) and s["content_tokens"] == len(want) - n_docs
        assert t.column("block_index").to_pylist() == list(range(len(t)))
    assert m["splits"]["valid"]["documents"] > 0
    # Literal "<s>" in a document is text, not the special token: specials only as structure.
    assert (got[:-1][got[:-1] == 0]).size == 0


def test_manifest_split_rerun_and_workers(corpus_root, tmp_path):
    a = _fresh(corpus_root, tmp_path / "a")
    m = shard_corpus(a, block_size=T, valid_fraction=0.1, workers=1)
    for k in ("format", "block_size", "dtype", "pad_id", "tokenizer_sha256", "splits",
              "skipped", "dropped_tokens", "vocab_size", "mask_id"):
        assert k in m
    assert m["format"] == "full-sentences" and m["dtype"] == "uint16" and m["pad_id"] == 1
    assert m["tokenizer_sha256"] == bpe.load_info(a)["tokenizer_sha256"]
    assert json.loads((a / "shards" / "manifest.json").read_text()) == m == read_manifest(a)
    # Rerun with the same parameters: nothing rewritten.
    part = a / "shards" / "train" / "part-00000.parquet"
    mtime = part.stat().st_mtime_ns
    assert shard_corpus(a, block_size=T, valid_fraction=0.1, workers=1) == m
    assert part.stat().st_mtime_ns == mtime
    # Interrupted run: manifest and one part missing; the rerun redoes only that part.
    (a / "shards" / "manifest.json").unlink()
    (a / "shards" / "train" / "part-00001.parquet").unlink()
    (a / "shards" / "_parts" / "part-00001.json").unlink()
    m2 = shard_corpus(a, block_size=T, valid_fraction=0.1, workers=1)
    assert part.stat().st_mtime_ns == mtime
    m2.pop("seconds"), m.pop("seconds")
    assert m2 == m
    # Two worker processes produce the same bytes' worth of blocks.
    b = _fresh(corpus_root, tmp_path / "b")
    mb = shard_corpus(b, block_size=T, valid_fraction=0.1, workers=2)
    mb.pop("seconds")
    assert mb == m
    for split in ("train", "valid"):
        assert _blocks(a, split).equals(_blocks(b, split))
    # Documents never in both splits.
    ids = {s: set() for s in ("train", "valid")}
    for doc_id, _ in _documents(a):
        ids["valid" if is_valid(doc_id, 0.1) else "train"].add(doc_id)
    assert not ids["train"] & ids["valid"]
    assert not list((a / "shards").rglob(".*.tmp-*"))


def test_rerun_redoes_parts_whose_shards_are_damaged(corpus_root, tmp_path):
    # A record says a part was written; the rerun believes it only if the file is still there
    # at the size it was written with.
    a = _fresh(corpus_root, tmp_path / "a")
    m = shard_corpus(a, block_size=T, valid_fraction=0.1, workers=1)
    m.pop("seconds")
    train = a / "shards" / "train"
    intact = {p.name: p.read_bytes() for p in train.glob("*.parquet")}
    untouched = (train / "part-00002.parquet").stat().st_mtime_ns
    # 1. truncated, manifest still there
    truncated = train / "part-00000.parquet"
    truncated.write_bytes(intact[truncated.name][: len(intact[truncated.name]) // 2])
    with pytest.warns(UserWarning, match="part-00000.parquet is .* bytes, but was written with"):
        m1 = shard_corpus(a, block_size=T, valid_fraction=0.1, workers=1)
    assert truncated.read_bytes() == intact[truncated.name]
    # 2. deleted together with the manifest; its _parts record remains
    (a / "shards" / "manifest.json").unlink()
    (train / "part-00001.parquet").unlink()
    with pytest.warns(UserWarning, match="part-00001.parquet is missing; redoing part-00001"):
        m2 = shard_corpus(a, block_size=T, valid_fraction=0.1, workers=1)
    assert (train / "part-00001.parquet").read_bytes() == intact["part-00001.parquet"]
    assert (train / "part-00002.parquet").stat().st_mtime_ns == untouched
    m1.pop("seconds"), m2.pop("seconds")
    assert m1 == m2 == m
    assert all(f["bytes"] == (a / "shards" / f["path"]).stat().st_size
               for s in ("train", "valid") for f in m["splits"][s]["files"])


def test_errors(corpus_root, tmp_path):
    with pytest.raises(ValueError, match="cannot hold"):
        choose_dtype(70000, "uint16")
    assert choose_dtype(70000) == np.uint32 and choose_dtype(65536) == np.uint16
    root = _fresh(corpus_root, tmp_path / "r")
    with pytest.raises(ValueError, match="cannot hold"):
        shard_corpus(root, dtype="uint8", workers=1)
    with pytest.raises(ValueError, match="unknown format"):
        shard_corpus(root, fmt="paragraphs", workers=1)
    empty = tmp_path / "empty"
    shutil.copytree(corpus_root / "tokenizer", empty / "tokenizer")
    write_corpus(empty, ["", "   "], n_parts=1)
    with pytest.raises(ValueError, match="empty corpus"):
        shard_corpus(empty, workers=1)
    shutil.rmtree(empty / "corpus" / "documents")
    (empty / "corpus" / "documents").mkdir()
    with pytest.raises(ValueError, match="empty corpus"):
        shard_corpus(empty, workers=1)
    assert not (empty / "shards" / "manifest.json").exists()


@pytest.fixture(scope="module")
def pair_shards(corpus_root, tmp_path_factory):
    root = _fresh(corpus_root, tmp_path_factory.mktemp("pairs"))
    m = shard_corpus(root, fmt="segment-pair", block_size=T, valid_fraction=0.1,
                     static_masks=3, workers=1)
    return root, m


def test_pair_format_columns(pair_shards):
    root, m = pair_shards
    t = _blocks(root, "train")
    assert {"segment_ids", "nsp_label", "mask_positions", "mask_tokens"} <= set(t.column_names)
    nsp = m["splits"]["train"]["nsp"]
    assert nsp["is_next"] + nsp["not_next"] == m["splits"]["train"]["blocks"]
    assert 0.35 < nsp["not_next"] / m["splits"]["train"]["blocks"] < 0.65
    assert m["nsp_label"] == {"0": "is_next", "1": "not_next"}


@pytest.mark.parametrize("fmt", ["sentence-pair"])
def test_sentence_pair_runs(corpus_root, tmp_path, fmt):
    root = _fresh(corpus_root, tmp_path)
    m = shard_corpus(root, fmt=fmt, block_size=T, valid_fraction=0.0, workers=1)
    t = _blocks(root, "train")
    assert len(t) == m["splits"]["train"]["blocks"] and m["splits"]["valid"]["blocks"] == 0
    # One sentence each side: much shorter than a block on average.
    assert t.column("length").to_numpy().mean() < T * 0.75


# ---------------------------------------------------------------- reading


@pytest.fixture(scope="module")
def full_shards(corpus_root, tmp_path_factory):
    root = _fresh(corpus_root, tmp_path_factory.mktemp("full"))
    shard_corpus(root, block_size=T, valid_fraction=0.1, workers=1, rows_per_group=100)
    return root


def _all(reader, epoch, offset=0):
    return list(reader.iter_epoch(epoch, offset))


def test_reader_epoch_covers_every_block_once(full_shards):
    r = ShardReader(full_shards, "train", batch_size=32, shuffle=True, drop_last=False,
                    shuffle_window=250)
    n = load_manifest(full_shards)[2]["splits"]["train"]["blocks"]
    assert r.num_blocks == n and len(r._groups) > 3
    batches = _all(r, 0)
    idx = np.concatenate([b["block_index"] for b in batches])
    assert sorted(idx.tolist()) == list(range(n))
    assert idx.tolist() != list(range(n))  # shuffled
    b = batches[0]
    assert b["input_ids"].dtype == np.int64 and b["input_ids"].shape == (32, T)
    assert (b["input_ids"][:, 0] == 0).all() and "segment_ids" not in b
    # The same block has the same content whatever the order.
    plain = ShardReader(full_shards, "train", batch_size=n, shuffle=False, drop_last=False)
    ref = _all(plain, 0)[0]
    np.testing.assert_array_equal(ref["block_index"], np.arange(n))
    np.testing.assert_array_equal(b["input_ids"], ref["input_ids"][b["block_index"]])
    np.testing.assert_array_equal(b["lengths"], ref["lengths"][b["block_index"]])
    # Deterministic per (seed, epoch); different across epochs and seeds.
    again = np.concatenate([x["block_index"] for x in _all(r, 0)])
    np.testing.assert_array_equal(again, idx)
    assert not np.array_equal(np.concatenate([x["block_index"] for x in _all(r, 1)]), idx)


def test_reader_ranks_are_disjoint_and_equal(full_shards):
    world = 3
    seen = []
    for rank in range(world):
        r = ShardReader(full_shards, "train", batch_size=8, rank=rank, world_size=world,
                        seed=1, shuffle_window=128)
        idx = np.concatenate([b["block_index"] for b in _all(r, 2)])
        assert len(idx) == len(r) * 8
        seen.append(set(idx.tolist()))
    assert len({len(s) for s in seen}) == 1
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])


def test_reader_resumes_exactly(full_shards):
    r = ShardReader(full_shards, "train", batch_size=16, seed=3, shuffle_window=100)
    it = iter(r)
    first = [next(it) for _ in range(len(r) + 5)]  # runs into the second epoch
    state = r.state_dict()
    assert state["epoch"] == 1 and state["offset"] == 5 * 16
    rest = [next(it) for _ in range(7)]
    resumed = ShardReader(full_shards, "train", batch_size=16, seed=3, shuffle_window=100)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    it2 = iter(resumed)
    for want in rest:
        got = next(it2)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    assert first  # (the run before the checkpoint)
    with pytest.raises(ValueError, match="seed"):
        ShardReader(full_shards, "train", seed=4).load_state_dict(state)


def test_reader_static_masks_and_pairs(pair_shards):
    root, m = pair_shards
    r = ShardReader(root, "train", batch_size=8, seed=0)
    b0 = next(iter(r.iter_epoch(0)))
    for key in ("segment_ids", "nsp_label", "static_input_ids", "static_labels"):
        assert key in b0
    sel = b0["static_labels"] != -100
    assert sel.any()
    np.testing.assert_array_equal(b0["static_labels"][sel], b0["input_ids"][sel])
    np.testing.assert_array_equal(b0["static_input_ids"][~sel], b0["input_ids"][~sel])
    assert (b0["input_ids"][sel] > 3).all()
    # Epoch e uses mask e % K: epoch 3 repeats epoch 0's mask for the same block.
    r2 = ShardReader(root, "train", batch_size=r.num_blocks, shuffle=False)
    e0, e1, e3 = (_all(r2, e)[0] for e in (0, 1, 3))
    np.testing.assert_array_equal(e0["static_labels"], e3["static_labels"])
    assert not np.array_equal(e0["static_labels"], e1["static_labels"])


def test_reader_imports_only_numpy_and_pyarrow():
    import subprocess
    import sys

    code = ("import sys, training.shard_reader as m; "
            "bad = [x for x in ('ray', 'torch', 'prefect', 'tokenizers', 'corpus') "
            "if x in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_ray_data_reads_same_blocks(full_shards, ray_local):
    from training.ray_data import read_shards, to_numpy_batch

    m = load_manifest(full_shards)[2]
    ds = read_shards(full_shards, "train")
    assert ds.count() == m["splits"]["train"]["blocks"]
    batch = next(iter(ds.iter_batches(batch_size=16, batch_format="pyarrow")))
    out = to_numpy_batch(batch)
    assert out["input_ids"].shape == (16, T) and out["input_ids"].dtype == np.int64
