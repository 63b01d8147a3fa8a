"""Conservation on the bundled sample crawl: build-corpus's documents, our tokenizer and shards."""
import numpy as np
import pyarrow.parquet as pq
import pytest

from corpus import bpe
from corpus.sharding import is_valid, shard_corpus


@pytest.fixture(scope="module")
def sample_corpus_root(tmp_path_factory, sample_warc):
    from corpus.dedup import deduplicate
    from corpus.warc_file import process_warc

    root = tmp_path_factory.mktemp("sample-shards")
    process_warc(sample_warc, root)
    deduplicate(root)
    bpe.train_tokenizer(root, vocab_size=2000)
    return root


@pytest.mark.parametrize("fmt", ["full-sentences", "doc-sentences"])
def test_sample_corpus_tokens_conserved(sample_corpus_root, fmt):
    root = sample_corpus_root
    m = shard_corpus(root, fmt=fmt, block_size=128, valid_fraction=0.1, workers=1)
    docs = pq.read_table(root / "corpus" / "documents", columns=["doc_id", "text"])
    tok = bpe.load_tokenizer(root)
    tok.encode_special_tokens = True
    for split in ("train", "valid"):
        want = []
        for doc_id, text in zip(docs.column("doc_id").to_pylist(), docs.column("text").to_pylist()):
            if text.strip() and is_valid(doc_id, 0.1) == (split == "valid"):
                want += tok.encode(text, add_special_tokens=False).ids + [bpe.EOS_ID]
        files = sorted((root / "shards" / split).glob("part-*.parquet"))
        t = pq.read_table(files)
        ids = np.stack(t.column("input_ids").to_numpy(zero_copy_only=False))
        got = np.concatenate([row[1:n] for row, n in zip(ids, t.column("length").to_numpy())])
        np.testing.assert_array_equal(got, np.array(want))
        assert m["splits"][split]["blocks"] == len(t) > 0
    assert m["splits"]["train"]["documents"] + m["splits"]["valid"]["documents"] == len(docs)
    import shutil
    shutil.rmtree(root / "shards")
