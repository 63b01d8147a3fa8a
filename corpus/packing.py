"""The paper's four input formats (RoBERTa §4.2, Table 2) as packers of token blocks, and
BERT-style static masks.

A document arrives as its token ids (the whole text encoded once, no special tokens) and its
sentence boundaries in token space (`bounds`, from `corpus.sentences`, [0, ..., n]).

Block layouts (T = block_size, pad = `<pad>` after `length` tokens):

FULL-SENTENCES   `<s>` + up to T-1 tokens of the stream  d1 `</s>` d2 `</s>` d3 ...
                 Whole sentences are packed greedily (fairseq `--sample-break-mode complete`
                 on a file whose documents are separated by a blank line: §1.4 of the
                 recipe notes); the `</s>` after each document is the paper's "extra
                 separator token between documents" and sticks to the document's last
                 sentence. Blocks cross document boundaries; within one input part the
                 stream is continuous, so only the last block of a part may be short.
DOC-SENTENCES    The same, but a block is closed at every document end (fairseq
                 `complete_doc`), so blocks never mix documents.
SEGMENT-PAIR     `<s> A </s></s> B </s>` (RoBERTa's pair template), segment ids 0 for
                 `<s> A </s>` and 1 for `</s> B </s>`. A and B are runs of whole sentences
                 from one document filling up to T-4 tokens (BERT's create_pretraining_data,
                 without its random short sequences, which RoBERTa dropped). NSP label: with
                 probability 1/2 B is the true continuation, else B is taken from another
                 document and A's unused continuation is put back to start the next pair.
SENTENCE-PAIR    The same template with one sentence as A and one as B.

nsp_label follows BERT/HF: 0 = B continues A (IsNext), 1 = B is random (NotNext).

No token is ever dropped: a sentence longer than what a block (or a segment) can hold is cut
into pieces at the limit. For FULL- and DOC-SENTENCES the blocks minus `<s>`, padding and
the separators are exactly the documents' tokens, in order.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from runroot.shard_format import NSP_IS_NEXT, NSP_NOT_NEXT, check_format, is_pair


@dataclasses.dataclass
class Blocks:
    """A batch of packed blocks (numpy), ready for a Parquet table."""
    input_ids: np.ndarray           # [N, T], pad-filled
    lengths: np.ndarray             # [N] int32
    segment_ids: np.ndarray | None = None  # [N, T] uint8 (pair formats)
    nsp_label: np.ndarray | None = None    # [N] int8 (pair formats)

    def __len__(self) -> int:
        return len(self.lengths)


def unit_ranges(bounds: np.ndarray, cap: int) -> list[tuple[int, int]]:
    """Sentences as [start, end) ranges, those longer than `cap` cut into pieces of `cap`."""
    out = []
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        while e - s > cap:
            out.append((s, s + cap))
            s += cap
        if e > s:
            out.append((s, e))
    return out


class SentencePacker:
    """FULL-SENTENCES (cross_documents=True) and DOC-SENTENCES (False)."""

    def __init__(self, block_size: int, bos_id: int, eos_id: int, pad_id: int,
                 cross_documents: bool = True, dtype=np.uint16):
        if block_size < 2:
            raise ValueError("block_size must be at least 2 (<s> + one token)")
        self.T, self.cap = block_size, block_size - 1
        self.bos, self.eos, self.pad = bos_id, eos_id, pad_id
        self.cross = cross_documents
        self.dtype = dtype
        self._open: list[np.ndarray] = []  # tokens of the not yet closed block
        self._open_len = 0
        self._done: list[np.ndarray] = []  # closed blocks' contents (without <s>)

    def _close(self) -> None:
        if self._open_len:
            self._done.append(np.concatenate(self._open) if len(self._open) > 1 else self._open[0])
        self._open, self._open_len = [], 0

    def add_document(self, ids: np.ndarray, bounds: np.ndarray) -> None:
        """Add one document: its tokens and sentence boundaries (bounds[-1] == len(ids))."""
        stream = np.empty(len(ids) + 1, dtype=ids.dtype)
        stream[:-1] = ids
        stream[-1] = self.eos  # the document separator joins the last sentence
        b = np.asarray(bounds).copy()
        b[-1] = len(stream)
        for s, e in unit_ranges(b, self.cap):
            if self._open_len + (e - s) > self.cap:
                self._close()
            self._open.append(stream[s:e])
            self._open_len += e - s
        if not self.cross:
            self._close()

    def take(self, final: bool = False) -> Blocks:
        """The blocks closed so far (all of them, the open one included, when `final`)."""
        if final:
            self._close()
        contents, self._done = self._done, []
        n = len(contents)
        out = np.full((n, self.T), self.pad, dtype=self.dtype)
        lengths = np.empty(n, dtype=np.int32)
        out[:, 0] = self.bos
        for i, c in enumerate(contents):
            out[i, 1:1 + len(c)] = c
            lengths[i] = len(c) + 1
        return Blocks(out, lengths)


class PairPacker:
    """SEGMENT-PAIR (sentences_per_segment=None) and SENTENCE-PAIR (1) with NSP labels.

    Random B segments come from the other documents of the same batch (`pool`), so results
    depend only on the batch composition and the RNG, never on worker count or timing.
    """

    def __init__(self, block_size: int, bos_id: int, eos_id: int, pad_id: int,
                 single_sentence: bool, dtype=np.uint16):
        if block_size < 6:
            raise ValueError("pair formats need block_size >= 6")
        self.T = block_size
        self.budget = block_size - 4  # <s> A </s></s> B </s>
        self.half = self.budget // 2  # longest unit: any A leaves room for a B
        self.bos, self.eos, self.pad = bos_id, eos_id, pad_id
        self.single = single_sentence
        self.dtype = dtype
        self._pairs: list[tuple[np.ndarray, np.ndarray, int]] = []
        self._recent: list[list[np.ndarray]] = []  # earlier batches' documents, for random Bs
        self.recent_docs = 64
        self.borrowed_tokens = 0

    def _units(self, ids: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
        return [ids[s:e] for s, e in unit_ranges(np.asarray(bounds), self.half)]

    def add_batch(self, docs: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator
                  ) -> None:
        units = [self._units(ids, b) for ids, b in docs]
        pool = units + self._recent  # document d of this batch is pool[d]
        for d, us in enumerate(units):
            self._add_document(d, us, pool, rng)
        self._recent = (units + self._recent)[:self.recent_docs]

    def _random_segment(self, d: int, units: list[list[np.ndarray]], room: int,
                        rng: np.random.Generator) -> np.ndarray | None:
        others = [j for j in range(len(units)) if j != d and units[j]]
        if not others:
            return None
        us = units[others[int(rng.integers(len(others)))]]
        start = int(rng.integers(len(us)))
        if self.single:
            seg = us[start][:room]
        else:
            taken, n = [], 0
            for u in us[start:]:
                if n + len(u) > room:
                    break
                taken.append(u)
                n += len(u)
            seg = np.concatenate(taken) if taken else us[start][:room]
        self.borrowed_tokens += len(seg)
        return seg

    def _add_document(self, d: int, us: list[np.ndarray], units, rng) -> None:
        i = 0
        while i < len(us):
            # The chunk: whole units from i, up to the budget (one unit for SENTENCE-PAIR+B).
            j, n = i, 0
            limit = 2 if self.single else len(us) - i
            while j < len(us) and j - i < limit and n + len(us[j]) <= self.budget:
                n += len(us[j])
                j += 1
            chunk = us[i:j]
            a_end = 1 if self.single or len(chunk) == 1 else int(rng.integers(1, len(chunk)))
            a = np.concatenate(chunk[:a_end])
            b = None
            if len(chunk) == 1 or rng.random() < 0.5:
                b = self._random_segment(d, units, self.budget - len(a), rng)
            if b is not None:
                self._pairs.append((a, b, NSP_NOT_NEXT))
                i += a_end  # A's true continuation is put back, not lost
                continue
            if len(chunk) == 1:  # no other document to draw from: split the unit itself
                u = chunk[0]
                h = max(1, len(u) // 2)
                self._pairs.append((u[:h], u[h:], NSP_IS_NEXT))
            else:
                self._pairs.append((a, np.concatenate(chunk[a_end:]), NSP_IS_NEXT))
            i = j

    def take(self, final: bool = False) -> Blocks:
        pairs, self._pairs = self._pairs, []
        n = len(pairs)
        out = np.full((n, self.T), self.pad, dtype=self.dtype)
        seg = np.zeros((n, self.T), dtype=np.uint8)
        lengths = np.empty(n, dtype=np.int32)
        nsp = np.empty(n, dtype=np.int8)
        for r, (a, b, label) in enumerate(pairs):
            la, lb = len(a), len(b)
            row = out[r]
            row[0] = self.bos
            row[1:1 + la] = a
            row[1 + la] = self.eos
            row[2 + la] = self.eos
            row[3 + la:3 + la + lb] = b
            row[3 + la + lb] = self.eos
            seg[r, 2 + la:4 + la + lb] = 1
            lengths[r] = la + lb + 4
            nsp[r] = label
        return Blocks(out, lengths, seg, nsp)


def make_packer(fmt: str, block_size: int, bos_id: int, eos_id: int, pad_id: int, dtype):
    """The packer of one of the formats of runroot.shard_format."""
    if is_pair(check_format(fmt)):
        return PairPacker(block_size, bos_id, eos_id, pad_id, fmt == "sentence-pair", dtype)
    return SentencePacker(block_size, bos_id, eos_id, pad_id, fmt == "full-sentences", dtype)


# ---------------------------------------------------------------- static masking

def static_masks(input_ids: np.ndarray, lengths: np.ndarray, block_index: np.ndarray, k: int,
                 seed: int, mask_id: int, vocab_size: int, special_ids=(0, 1, 2, 3),
                 mask_prob: float = 0.15, random_token_prob: float = 0.1,
                 leave_unmasked_prob: float = 0.1) -> tuple[list, list]:
    """K fixed masks per block, as the original BERT's `dupe_factor` (RoBERTa Table 1).

    Same semantics as dynamic masking (fairseq MaskTokensDataset defaults): among positions
    that are not special tokens or padding, choose int(p * n + U[0,1)) positions without
    replacement; of those 80% become `<mask>`, 10% a random non-special token, 10% stay.
    The RNG is seeded by (seed, global block index, k): independent of workers and order.

    Returns (positions, tokens): per block a list of K arrays of positions (uint16, sorted)
    and K arrays of the token ids the model sees there; labels are input_ids[positions].
    """
    specials = np.asarray(sorted(set(special_ids) | {mask_id}))
    pos_out, tok_out = [], []
    for row, length, bidx in zip(input_ids, lengths, block_index):
        cand = np.flatnonzero(~np.isin(row[:length], specials))
        p_k, t_k = [], []
        for j in range(k):
            rng = np.random.default_rng([seed, int(bidx), j])
            num = int(mask_prob * len(cand) + rng.random())
            pos = np.sort(rng.choice(cand, size=num, replace=False)) if num else cand[:0]
            u = rng.random(num)
            toks = row[pos].astype(np.int64)
            is_mask = u < 1.0 - random_token_prob - leave_unmasked_prob
            is_rand = (~is_mask) & (u < 1.0 - leave_unmasked_prob)
            toks[is_mask] = mask_id
            toks[is_rand] = rng.integers(len(special_ids), mask_id, size=int(is_rand.sum()))
            p_k.append(pos.astype(np.uint16))
            t_k.append(toks)
        pos_out.append(p_k)
        tok_out.append(t_k)
    return pos_out, tok_out


