"""Packers of the four input formats and static masks, on synthetic token streams."""
import numpy as np
import pytest

from corpus.packing import PairPacker, SentencePacker, make_packer, static_masks, unit_ranges
from runroot.shard_format import NSP_IS_NEXT, NSP_NOT_NEXT

BOS, PAD, EOS = 0, 1, 2


def synthetic_docs(n_docs, rng, max_sentences=12, max_len=40, long_every=7, T=64):
    """Documents whose ids are distinct (doc*10000 + position + 10) so order is checkable."""
    docs = []
    for d in range(n_docs):
        lens = rng.integers(1, max_len, size=rng.integers(1, max_sentences))
        if d % long_every == 3:
            lens[0] = 3 * T + 5  # a sentence longer than a block
        bounds = np.concatenate([[0], np.cumsum(lens)])
        ids = (np.arange(bounds[-1]) + 10 + d * 10000).astype(np.int64)
        docs.append((ids, bounds))
    return docs


def test_unit_ranges_cut_long_sentences():
    assert unit_ranges(np.array([0, 3, 10, 11]), 4) == [(0, 3), (3, 7), (7, 10), (10, 11)]


@pytest.mark.parametrize("cross", [True, False])
def test_sentence_packer_conserves_tokens(cross):
    T = 64
    docs = synthetic_docs(40, np.random.default_rng(0), T=T)
    p = SentencePacker(T, BOS, EOS, PAD, cross_documents=cross, dtype=np.uint32)
    for ids, b in docs[:20]:
        p.add_document(ids, b)
    first = p.take()
    for ids, b in docs[20:]:
        p.add_document(ids, b)
    blocks = p.take(final=True)
    ids_ = np.concatenate([first.input_ids, blocks.input_ids])
    lengths = np.concatenate([first.lengths, blocks.lengths])
    assert (ids_[:, 0] == BOS).all() and (lengths <= T).all() and (lengths >= 2).all()
    for row, n in zip(ids_, lengths):
        assert (row[n:] == PAD).all() and PAD not in row[:n]
    stream = np.concatenate([row[1:n] for row, n in zip(ids_, lengths)])
    want = np.concatenate([np.append(ids, EOS) for ids, _ in docs])
    np.testing.assert_array_equal(stream, want)
    if not cross:  # DOC-SENTENCES: a separator only ever ends a block
        for row, n in zip(ids_, lengths):
            assert EOS not in row[1:n - 1]
    else:  # FULL-SENTENCES crosses documents, so fewer blocks
        assert any(EOS in row[1:n - 1] for row, n in zip(ids_, lengths))


def test_full_sentences_cut_only_at_sentence_boundaries():
    T = 32
    ids = np.arange(10, 10 + 60)
    bounds = np.array([0, 10, 25, 40, 60])  # all sentences fit in a block
    p = SentencePacker(T, BOS, EOS, PAD, True, np.uint16)
    p.add_document(ids, bounds)
    b = p.take(final=True)
    assert b.lengths.tolist() == [1 + 25, 1 + 15, 1 + 21]  # 10+15 | 15 | 20+</s>


def _segments(row, seg, n):
    """(A, B) contents from `<s> A </s></s> B </s>`, checking the template."""
    body = row[:n]
    assert body[0] == BOS and body[-1] == EOS
    sep = np.flatnonzero(body == EOS)
    a_end = sep[0]
    assert body[a_end + 1] == EOS
    assert (seg[:a_end + 1] == 0).all() and (seg[a_end + 1:n] == 1).all() and (seg[n:] == 0).all()
    return body[1:a_end], body[a_end + 2:-1]


@pytest.mark.parametrize("single", [False, True])
def test_pair_packer_layout_and_labels(single):
    T = 64
    docs = synthetic_docs(60, np.random.default_rng(1), T=T)
    p = PairPacker(T, BOS, EOS, PAD, single_sentence=single, dtype=np.uint32)
    p.add_batch(docs, np.random.default_rng(5))
    b = p.take(final=True)
    assert (b.lengths <= T).all()
    labels = b.nsp_label
    assert set(labels.tolist()) <= {NSP_IS_NEXT, NSP_NOT_NEXT}
    assert 0.35 < (labels == NSP_NOT_NEXT).mean() < 0.65
    for row, seg, n, label in zip(b.input_ids, b.segment_ids, b.lengths, labels):
        a, bseg = _segments(row, seg, n)
        assert len(a) >= 1
        same_doc = bseg.size and a[0] // 10000 == bseg[0] // 10000
        if label == NSP_IS_NEXT:
            assert same_doc and (bseg.size == 0 or bseg[0] == a[-1] + 1)  # true continuation
        else:
            assert not same_doc
    # Every token of every document appears in some A or IsNext B (nothing dropped).
    seen = set()
    for row, seg, n, label in zip(b.input_ids, b.segment_ids, b.lengths, labels):
        a, bseg = _segments(row, seg, n)
        seen.update(a.tolist())
        if label == NSP_IS_NEXT:
            seen.update(bseg.tolist())
    assert seen == set(np.concatenate([ids for ids, _ in docs]).tolist())
    again = PairPacker(T, BOS, EOS, PAD, single_sentence=single, dtype=np.uint32)
    again.add_batch(docs, np.random.default_rng(5))
    np.testing.assert_array_equal(again.take().input_ids, b.input_ids)


def test_pair_packer_single_document_has_no_negative():
    ids, b = np.arange(10, 30), np.array([0, 20])
    p = PairPacker(16, BOS, EOS, PAD, False, np.uint16)
    p.add_batch([(ids, b)], np.random.default_rng(0))
    out = p.take()
    assert (out.nsp_label == NSP_IS_NEXT).all()
    got = np.concatenate([np.concatenate(_segments(r, s, n))
                          for r, s, n in zip(out.input_ids, out.segment_ids, out.lengths)])
    np.testing.assert_array_equal(got, ids)


def test_make_packer_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        make_packer("bogus", 512, 0, 2, 1, np.uint16)


def test_static_masks_semantics():
    rng = np.random.default_rng(0)
    T, V, MASK = 128, 1000, 999
    n = 200
    ids = np.full((n, T), PAD, dtype=np.uint16)
    lengths = rng.integers(20, T + 1, size=n)
    for i, L in enumerate(lengths):
        ids[i, :L] = rng.integers(4, MASK, size=L)
        ids[i, 0], ids[i, L - 1] = BOS, EOS
    idx = np.arange(1000, 1000 + n)
    pos, toks = static_masks(ids, lengths, idx, 3, 7, MASK, V)
    pos2, toks2 = static_masks(ids, lengths, idx, 3, 7, MASK, V)
    assert all((a == b).all() for pa_, pb in zip(pos, pos2) for a, b in zip(pa_, pb))
    n_sel = n_mask = n_keep = n_cand = 0
    for i in range(n):
        assert len(pos[i]) == 3
        assert not all(np.array_equal(pos[i][0], p) for p in pos[i][1:])  # K different masks
        for p, t in zip(pos[i], toks[i]):
            assert (p >= 1).all() and (p < lengths[i] - 1).all()  # never <s>, </s>, <pad>
            n_sel += len(p)
            n_mask += int((t == MASK).sum())
            n_keep += int((t == ids[i, p]).sum())
            assert ((t >= 4) & (t <= MASK)).all()
        n_cand += 3 * (lengths[i] - 2)
    assert abs(n_sel / n_cand - 0.15) < 0.01
    assert abs(n_mask / n_sel - 0.8) < 0.03 and abs(n_keep / n_sel - 0.1) < 0.03
