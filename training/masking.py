"""MLM corruption: fairseq `MaskTokensDataset` semantics, as a pure function of
(seed, epoch, block_index).

Per block (fairseq, `mask_whole_words=False`, `mask_multiple_length=1`):
  - eligible = tokens that are not special (<s> <pad> </s> <unk>, and never <mask>) -- fairseq
    can select specials; we never do, nor padding;
  - select exactly int(mask_prob * n_eligible + U) eligible positions, U ~ Uniform[0, 1)
    (probabilistic rounding), uniformly without replacement;
  - of the selected: 80% -> <mask>, 10% -> a random non-special id (uniform), 10% unchanged
    (fairseq's leave_unmasked_prob / random_token_prob), decided per token;
  - the loss targets are the original ids at every selected position.

Randomness: one numpy Philox stream per block, keyed by `seed`, with `epoch` and
`block_index` in the high words of the counter (the low words advance as numbers are drawn,
so streams never overlap). The mask of a block therefore does not depend on batch composition,
worker count, or whether the run was resumed. ~35k blocks/s of 512 tokens on one core.

Output batch (numpy, ready for `batch_to_device`):
    input_ids      int64 (B, T)   corrupted ids
    mlm_positions  int64 (N,)     flat indices b*T + t of the selected positions, sorted
    mlm_targets    int64 (N,)     original ids there; IGNORE_INDEX (-100) for padding entries
    attention_mask bool  (B, T)   only present when the batch contains <pad>
    num_masked     int            real (non-padding) entries in mlm_targets
    num_tokens     int            non-pad tokens in the batch
    nsp_labels     int64 (B,)     only for pair formats (passed through)
N is padded to a static capacity (an upper bound for this batch shape), so a compiled model
sees one shape per (B, T) and never recompiles because the mask count changed.
"""
from __future__ import annotations

import numpy as np

from training.config import MaskingConfig

# The target id of "not a target" (PyTorch's cross-entropy default): bucket padding in
# mlm_targets, unmasked positions in dense labels (static masks, HF baselines).
IGNORE_INDEX = -100


def block_rng(seed: int, epoch: int, block_index: int) -> np.random.Generator:
    if seed < 0 or epoch < 0 or block_index < 0:
        raise ValueError(f"seed/epoch/block_index must be >= 0, got {seed}/{epoch}/{block_index}")
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, 0, block_index, epoch]))


def _special_table(cfg: MaskingConfig) -> np.ndarray:
    table = np.zeros(max(cfg.vocab_size, cfg.mask_id + 1, max(cfg.special_ids) + 1), dtype=bool)
    table[list(cfg.special_ids)] = True
    table[cfg.mask_id] = True
    return table


def _random_token_pool(cfg: MaskingConfig) -> np.ndarray | None:
    """None when the non-special ids are one contiguous range [lo, hi) (the RoBERTa case)."""
    ids = np.flatnonzero(~_special_table(cfg)[: cfg.vocab_size])
    if ids.size == 0:
        raise ValueError("no non-special ids to draw random replacements from")
    if ids[-1] - ids[0] + 1 == ids.size:
        return None
    return ids


def _effective_epoch(epoch: int, cfg: MaskingConfig) -> int:
    return epoch if cfg.static_copies is None else epoch % cfg.static_copies


def mask_block(tokens: np.ndarray, seed: int, epoch: int, block_index: int,
               cfg: MaskingConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt one block. Returns (input_ids, positions, targets) with positions sorted."""
    return Masker(cfg, seed).mask_block(tokens, epoch, block_index)


def mlm_capacity(batch_size: int, seq_len: int, cfg: MaskingConfig) -> int:
    """Upper bound on selected tokens for a (B, T) batch, rounded up to `cfg.bucket`."""
    per_block = min(seq_len, int(np.floor(cfg.mask_prob * seq_len + 1.0)))
    m = max(1, cfg.bucket)
    return -(-batch_size * per_block // m) * m


class Masker:
    """Applies dynamic (or static-copies) masking to batches of blocks. Cheap to build; holds
    only lookup tables, so it can live in each data-loader worker."""

    def __init__(self, cfg: MaskingConfig, seed: int, pad_id: int = 1):
        self.cfg, self.seed, self.pad_id = cfg, int(seed), pad_id
        self._special = _special_table(cfg)
        self._pool = _random_token_pool(cfg)
        if self._pool is None:
            ok = np.flatnonzero(~self._special[: cfg.vocab_size])
            self._lo, self._hi = int(ok[0]), int(ok[-1]) + 1

    def mask_block(self, tokens: np.ndarray, epoch: int, block_index: int):
        g = block_rng(self.seed, _effective_epoch(epoch, self.cfg), block_index)
        return self._mask_with(g, np.asarray(tokens))

    def _mask_with(self, g: np.random.Generator, tokens: np.ndarray):
        cfg = self.cfg
        eligible = np.flatnonzero(~self._special[tokens])
        n = eligible.size
        k = min(n, int(cfg.mask_prob * n + g.random()))
        positions = np.sort(eligible[g.choice(n, k, replace=False)]) if k else eligible[:0]
        u = g.random(k)
        if self._pool is None:
            rand_ids = g.integers(self._lo, self._hi, size=k)
        else:
            rand_ids = self._pool[g.integers(0, self._pool.size, size=k)]
        out = tokens.astype(np.int64, copy=True)
        targets = out[positions]
        to_mask = u < 1.0 - cfg.leave_unmasked_prob - cfg.random_token_prob
        to_rand = ~to_mask & (u < 1.0 - cfg.leave_unmasked_prob)
        out[positions[to_mask]] = cfg.mask_id
        out[positions[to_rand]] = rand_ids[to_rand]
        return out, positions.astype(np.int64), targets

    def __call__(self, tokens: np.ndarray, block_indices, epoch: int,
                 nsp_labels: np.ndarray | None = None) -> dict:
        """tokens: (B, T) int array of blocks; block_indices: (B,) global block ids."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, seq_len), got shape {tokens.shape}")
        B, T = tokens.shape
        block_indices = np.asarray(block_indices, dtype=np.int64).reshape(-1)
        if block_indices.size != B:
            raise ValueError(f"{B} blocks but {block_indices.size} block indices")
        input_ids = np.empty((B, T), dtype=np.int64)
        pos_parts, tgt_parts = [], []
        for b in range(B):
            ids, pos, tgt = self.mask_block(tokens[b], epoch, int(block_indices[b]))
            input_ids[b] = ids
            pos_parts.append(pos + b * T)
            tgt_parts.append(tgt)
        return assemble_batch(input_ids, np.concatenate(pos_parts), np.concatenate(tgt_parts),
                              self.cfg, self.pad_id, nsp_labels)


def assemble_batch(input_ids: np.ndarray, positions: np.ndarray, targets: np.ndarray,
                   cfg: MaskingConfig, pad_id: int = 1,
                   nsp_labels: np.ndarray | None = None) -> dict:
    """Pad positions/targets to the static capacity and add the bookkeeping fields."""
    B, T = input_ids.shape
    n = positions.size
    cap = max(mlm_capacity(B, T, cfg), -(-n // max(1, cfg.bucket)) * max(1, cfg.bucket))
    pos = np.zeros(cap, dtype=np.int64)
    tgt = np.full(cap, IGNORE_INDEX, dtype=np.int64)
    pos[:n], tgt[:n] = positions, targets
    not_pad = input_ids != pad_id
    num_tokens = int(not_pad.sum())
    batch = {"input_ids": input_ids, "mlm_positions": pos, "mlm_targets": tgt,
             "num_masked": int(n), "num_tokens": num_tokens}
    if num_tokens != input_ids.size:
        batch["attention_mask"] = not_pad
    if nsp_labels is not None:
        batch["nsp_labels"] = np.asarray(nsp_labels, dtype=np.int64)
    return batch


def batch_from_static_labels(input_ids: np.ndarray, labels: np.ndarray, cfg: MaskingConfig,
                             pad_id: int = 1, nsp_labels: np.ndarray | None = None) -> dict:
    """Static masks precomputed per block (e.g. by shard-corpus): `input_ids` already corrupted,
    `labels` (B, T) holding the original id at selected positions and a negative value
    elsewhere (HF convention, -100)."""
    input_ids = np.asarray(input_ids, dtype=np.int64)
    labels = np.asarray(labels)
    if labels.shape != input_ids.shape:
        raise ValueError(f"labels shape {labels.shape} != input_ids shape {input_ids.shape}")
    flat = labels.reshape(-1)
    positions = np.flatnonzero(flat >= 0).astype(np.int64)
    return assemble_batch(input_ids, positions, flat[positions].astype(np.int64), cfg, pad_id,
                          nsp_labels)


def labels_from_batch(batch: dict) -> np.ndarray:
    """Dense (B, T) HF-style labels (-100 = not a target) from a batch dict: for baselines."""
    B, T = batch["input_ids"].shape
    labels = np.full(B * T, IGNORE_INDEX, dtype=np.int64)
    n = batch["num_masked"]
    labels[batch["mlm_positions"][:n]] = batch["mlm_targets"][:n]
    return labels.reshape(B, T)


__all__ = ["IGNORE_INDEX", "Masker", "mask_block", "block_rng", "mlm_capacity", "assemble_batch",
           "batch_from_static_labels", "labels_from_batch"]
