"""Streaming reader of the packed token shards: numpy batches, needing only pyarrow + numpy.

Runs on a bare GPU box (no Ray, no Prefect, no tokenizers). Reads `<root>/shards/manifest.json`
(written last by shard-corpus, so its presence means the shards are complete) and the Parquet
parts it lists.

Order of blocks in an epoch, for (seed, epoch, rank, world_size):
  1. the split's row groups are permuted (seed, epoch) and laid end to end: a sequence of
     N blocks that every rank computes identically from metadata alone;
  2. rank r owns the contiguous share [r*M, (r+1)*M) of it, M = N // world_size, so ranks
     are disjoint, equally long (DDP needs equal step counts; the < world_size left-over
     blocks are skipped this epoch, a different few each epoch), and each rank reads about
     1/world_size of the data;
  3. the share is cut into windows of `shuffle_window` blocks, each permuted (seed, epoch,
     rank, window): blocks of one window come from several random row groups.
Memory: one window (shuffle_window x block_size int64) plus one row group.

Resumption: `position` = (epoch, offset) with offset the number of this rank's blocks already
yielded in the epoch. `iter_epoch(epoch, offset)` restarts exactly there: same batches as an
uninterrupted run, without reading the skipped row groups.

Batch (numpy):
    input_ids    int64 [B, T]   `<s>` ... `<pad>`
    lengths      int64 [B]
    block_index  int64 [B]      global block id (seed for dynamic masking)
    segment_ids  int64 [B, T]   pair formats only
    nsp_label    int64 [B]      pair formats only (0 IsNext, 1 NotNext)
    static_input_ids  int64 [B, T]  static masks only: mask k = epoch % K applied
    static_labels     int64 [B, T]  static masks only: original id where masked, else -100
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from runroot import layout, shard_format, storage
from training.masking import IGNORE_INDEX

# The manifest's name inside a shards directory (readers take that directory or a run root).
_MANIFEST_NAME = layout.SHARDS_MANIFEST.rpartition("/")[2]
_REBUILD = "rebuild the shards (delete them, rerun shard-corpus)"


class ShardError(ValueError):
    """A shard file (or the manifest) is damaged or does not match the manifest; the message
    names the file."""


def load_manifest(path) -> tuple[pafs.FileSystem, str, dict]:
    """(filesystem, shards dir, manifest) from a run root or a shards directory."""
    fs, base = storage.resolve(path)
    for d in (storage.join(base, layout.SHARDS), base):
        p = storage.join(d, _MANIFEST_NAME)
        if fs.get_file_info(p).type == pafs.FileType.File:
            try:
                manifest = storage.read_json(fs, p)
                if not isinstance(manifest, dict) or "splits" not in manifest:
                    raise ValueError("no 'splits' object")
            except ValueError as exc:   # JSONDecodeError, UnicodeDecodeError are ValueErrors
                raise ShardError(f"{p}: damaged shards manifest ({exc}): {_REBUILD}") from exc
            return fs, d, manifest
    raise FileNotFoundError(f"no shards manifest under {base}: run shard-corpus first "
                            "(the manifest is written last; without it the shards are incomplete)")


def split_files(path, split: str) -> tuple[pafs.FileSystem, list[str], dict]:
    fs, d, manifest = load_manifest(path)
    if split not in manifest["splits"]:
        raise ValueError(f"unknown split {split!r}; manifest has {list(manifest['splits'])}")
    files = [storage.join(d, f["path"]) for f in manifest["splits"][split]["files"]]
    return fs, files, manifest


def table_to_batch(table: pa.Table, static_mask_index: int | None = None) -> dict:
    """A shards table (any slice of rows) as the numpy batch dict described above."""
    out = {}
    ids = table.column("input_ids").combine_chunks()
    T = ids.type.list_size
    n = len(ids)
    out["input_ids"] = ids.flatten().to_numpy().astype(np.int64).reshape(n, T)
    out["lengths"] = table.column("length").to_numpy().astype(np.int64)
    out["block_index"] = table.column("block_index").to_numpy().astype(np.int64)
    names = table.column_names
    if "segment_ids" in names:
        seg = table.column("segment_ids").combine_chunks()
        out["segment_ids"] = seg.flatten().to_numpy().astype(np.int64).reshape(n, T)
        out["nsp_label"] = table.column("nsp_label").to_numpy().astype(np.int64)
    if static_mask_index is not None and "mask_positions" in names and n:
        pos_outer = table.column("mask_positions").combine_chunks()
        tok_outer = table.column("mask_tokens").combine_chunks()
        k_total = len(pos_outer.flatten()) // n
        take = pa.array(np.arange(n, dtype=np.int64) * k_total + static_mask_index % k_total)
        pos_lists = pos_outer.flatten().take(take)
        tok_lists = tok_outer.flatten().take(take)
        rows = np.repeat(np.arange(n), pos_lists.value_lengths().to_numpy())
        cols = pos_lists.flatten().to_numpy().astype(np.int64)
        toks = tok_lists.flatten().to_numpy().astype(np.int64)
        masked = out["input_ids"].copy()
        labels = np.full_like(masked, IGNORE_INDEX)
        labels[rows, cols] = out["input_ids"][rows, cols]
        masked[rows, cols] = toks
        out["static_input_ids"], out["static_labels"] = masked, labels
    return out


def _schema_problem(schema: pa.Schema, block_size: int, pair: bool, static: bool) -> str | None:
    """Why a shard with this schema cannot be read as the manifest's blocks, or None."""
    lists = ["input_ids"] + (["segment_ids"] if pair else [])
    missing = [c for c in shard_format.required_columns(pair, static) if c not in schema.names]
    if missing:
        return f"no column(s) {missing} (it has {schema.names})"
    for c in lists:
        t = schema.field(c).type
        if not pa.types.is_fixed_size_list(t):
            return f"column {c!r} is {t}, not a fixed-size list of block_size={block_size} ids"
        if t.list_size != block_size:
            return (f"column {c!r} holds blocks of {t.list_size} tokens, the manifest says "
                    f"block_size {block_size}")
    return None


def _take(batch: dict, idx: np.ndarray) -> dict:
    return {k: v[idx] for k, v in batch.items()}


def _concat(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class ShardReader:
    """Batches of blocks for one split and one (rank, world_size); see the module docstring."""

    def __init__(self, path, split: str = "train", batch_size: int = 16, rank: int = 0,
                 world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, shuffle_window: int = 8192,
                 columns: list[str] | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        if batch_size < 1 or shuffle_window < 1:
            raise ValueError("batch_size and shuffle_window must be >= 1")
        self.fs, self.files, self.manifest = split_files(path, split)
        self.split, self.batch_size = split, batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle, self.drop_last, self.window = shuffle, drop_last, shuffle_window
        self.block_size = self.manifest["block_size"]
        self.static_masks = int(self.manifest.get("static_masks") or 0)
        self._columns = columns
        self._groups: list[tuple[int, int, int]] = []  # (file, row group, rows)
        for fi in range(len(self.files)):
            md = self._check(fi)
            for g in range(md.num_row_groups):
                self._groups.append((fi, g, md.row_group(g).num_rows))
        self.num_blocks = sum(g[2] for g in self._groups)
        expected = self.manifest["splits"][split]["blocks"]
        if self.num_blocks != expected:
            raise ValueError(f"{split}: shards hold {self.num_blocks} blocks, manifest says "
                             f"{expected}: the shards directory is inconsistent")
        self.position = {"epoch": 0, "offset": 0}
        self._cache: tuple[tuple[int, int], pa.Table] | None = None

    # ------------------------------------------------------------ sizes
    def _share(self) -> tuple[int, int]:
        n, w, r = self.num_blocks, self.world_size, self.rank
        if self.drop_last:
            m = n // w
            return r * m, (r + 1) * m
        return r * n // w, (r + 1) * n // w

    @property
    def blocks_per_rank(self) -> int:
        a, b = self._share()
        return b - a

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        n = self.blocks_per_rank
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # ------------------------------------------------------------ reading
    def _open(self, fi: int) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.fs.open_input_file(self.files[fi]))
        except (OSError, pa.ArrowException) as exc:
            raise ShardError(f"{self.files[fi]}: not a readable Parquet shard ({exc}): "
                             f"{_REBUILD}") from exc

    def _check(self, fi: int) -> pq.FileMetaData:
        """Shard `fi`'s metadata, after checking the file against the manifest from its size
        and footer alone (a damaged or mismatched shard fails here, not mid-training)."""
        path, entry = self.files[fi], self.manifest["splits"][self.split]["files"][fi]
        info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise ShardError(f"{path}: listed in the manifest but missing: {_REBUILD}")
        if entry.get("bytes") is not None and info.size != entry["bytes"]:
            raise ShardError(f"{path}: {info.size} bytes, the manifest recorded "
                             f"{entry['bytes']} (truncated or rewritten): {_REBUILD}")
        pf = self._open(fi)
        pair = shard_format.is_pair(self.manifest.get("format"))
        problem = _schema_problem(pf.schema_arrow, self.block_size, pair, self.static_masks > 0)
        if problem is None and entry.get("blocks") not in (None, pf.metadata.num_rows):
            problem = f"{pf.metadata.num_rows} blocks, the manifest says {entry['blocks']}"
        if problem:
            raise ShardError(f"{path}: {problem}: {_REBUILD}")
        return pf.metadata

    def _read_group(self, gi: int) -> pa.Table:
        fi, g, _ = self._groups[gi]
        if self._cache and self._cache[0] == (fi, g):
            return self._cache[1]
        try:
            t = self._open(fi).read_row_group(g, columns=self._columns)
        except (OSError, pa.ArrowException) as exc:   # pages that do not decode
            raise ShardError(f"{self.files[fi]}: row group {g} cannot be read ({exc}): "
                             f"{_REBUILD}") from exc
        self._cache = ((fi, g), t)
        return t

    def _group_order(self, epoch: int) -> np.ndarray:
        n = len(self._groups)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(n)

    def _read_range(self, order: np.ndarray, starts: np.ndarray, a: int, b: int) -> pa.Table:
        """Blocks [a, b) of the epoch sequence, in sequence order."""
        pieces = []
        k = int(np.searchsorted(starts, a, side="right")) - 1
        while a < b:
            gi = int(order[k])
            g_start, g_rows = int(starts[k]), self._groups[gi][2]
            lo, hi = a - g_start, min(b, g_start + g_rows) - g_start
            if hi > lo:
                pieces.append(self._read_group(gi).slice(lo, hi - lo))
            a = g_start + hi
            k += 1
        return pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]

    def iter_epoch(self, epoch: int, offset: int = 0) -> Iterator[dict]:
        """This rank's batches of `epoch`, starting after `offset` blocks already consumed."""
        order = self._group_order(epoch)
        sizes = np.array([self._groups[g][2] for g in order], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        share_a, share_b = self._share()
        n_share = share_b - share_a
        mask_k = epoch % self.static_masks if self.static_masks else None
        pending: list[dict] = []
        n_pending = 0
        pos = offset
        w = offset // self.window
        while w * self.window < n_share:
            wa, wb = w * self.window, min((w + 1) * self.window, n_share)
            table = self._read_range(order, starts, share_a + wa, share_a + wb)
            batch = table_to_batch(table, mask_k)
            if self.shuffle:
                perm = np.random.default_rng(
                    [self.seed, epoch, self.rank, self.world_size, w]).permutation(wb - wa)
                batch = _take(batch, perm)
            skip = max(0, offset - wa)
            if skip:
                batch = _take(batch, np.arange(skip, wb - wa))
            pending.append(batch)
            n_pending += wb - wa - skip
            cat = _concat(pending)
            full = n_pending - n_pending % self.batch_size
            for i in range(0, full, self.batch_size):
                out = {k: v[i:i + self.batch_size] for k, v in cat.items()}
                pos += self.batch_size
                self.position = {"epoch": epoch, "offset": pos}
                yield out
            pending = [{k: v[full:] for k, v in cat.items()}]
            n_pending -= full
            w += 1
        if n_pending and not self.drop_last:
            pos += n_pending
            self.position = {"epoch": epoch, "offset": pos}
            yield _concat(pending)
        self.position = {"epoch": epoch + 1, "offset": 0}

    def __iter__(self) -> Iterator[dict]:
        """Endless batches from `position`, epoch after epoch."""
        if len(self) == 0:   # every epoch would be empty: an endless loop yielding nothing
            raise ValueError(
                f"{self.split} split has {self.num_blocks} blocks for {self.world_size} "
                f"worker(s): rank {self.rank} gets {self.blocks_per_rank}, not one batch of "
                f"{self.batch_size}; add data or lower the batch size or worker count")
        while True:
            p = self.position
            yield from self.iter_epoch(p["epoch"], p["offset"])

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        return {**self.position, "seed": self.seed, "world_size": self.world_size,
                "rank": self.rank, "batch_size": self.batch_size, "split": self.split}

    def load_state_dict(self, state: dict) -> None:
        for k in ("seed", "world_size"):
            if k in state and state[k] != getattr(self, k):
                raise ValueError(f"cannot resume: checkpoint has {k}={state[k]}, "
                                 f"reader has {getattr(self, k)}")
        self.position = {"epoch": int(state["epoch"]), "offset": int(state["offset"])}
