"""The token shards as a Ray Data dataset (for Ray Train's streaming ingest).

Kept apart from `training.shard_reader` because that one must import without Ray.
`read_shards` lists files from the manifest (so an incomplete shards directory is never
read); `to_numpy_batch` turns Ray's pyarrow batches into the same dict the plain reader
yields, so the train step sees one format whichever way the data came.
"""
from __future__ import annotations

import pyarrow as pa

from training.shard_reader import split_files, table_to_batch


def read_shards(path, split: str = "train", columns: list[str] | None = None,
                shuffle_files: bool = False, **read_kwargs):
    """`ray.data.read_parquet` over one split's shards listed in the manifest."""
    import ray.data

    fs, files, manifest = split_files(path, split)
    if not files:
        raise ValueError(f"split {split!r} has no shards (manifest: "
                         f"{manifest['splits'][split]['blocks']} blocks)")
    if shuffle_files:
        read_kwargs.setdefault("shuffle", "files")
    return ray.data.read_parquet(files, filesystem=fs, columns=columns, **read_kwargs)


def to_numpy_batch(table: pa.Table, static_mask_index: int | None = None) -> dict:
    """For `ds.iter_batches(batch_format="pyarrow")`: the plain reader's batch dict."""
    return table_to_batch(table, static_mask_index)
