"""Damaged or mismatched shards, and splits too small for a batch: the reader names the file
(and row group) and says what is wrong, and never spins forever on an empty epoch."""
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests._pretrain_shards import sample_shards_root
from training.shard_reader import ShardError, ShardReader

pytestmark = pytest.mark.timeout(60)   # the empty-epoch bug was an endless loop


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return sample_shards_root(tmp_path_factory.getbasetemp()) / "shards"


@pytest.fixture
def copy(shards, tmp_path):
    """A private copy of the shards to damage."""
    return shutil.copytree(shards, tmp_path / "shards")


TRAIN = "train/part-00000.parquet"


def rewrite(d, table: pa.Table) -> None:
    """Replace the train shard by `table`, with a manifest that agrees on its size (a shard
    written by another writer, not a torn file)."""
    pq.write_table(table, d / TRAIN, row_group_size=64)
    m = json.loads((d / "manifest.json").read_text())
    m["splits"]["train"]["files"][0]["bytes"] = (d / TRAIN).stat().st_size
    (d / "manifest.json").write_text(json.dumps(m))


def test_truncated_shard_names_the_file(copy):
    data = (copy / TRAIN).read_bytes()
    (copy / TRAIN).write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=rf"{TRAIN}: \d+ bytes, the manifest recorded \d+"):
        ShardReader(copy, "train")
    m = json.loads((copy / "manifest.json").read_text())
    del m["splits"]["train"]["files"][0]["bytes"]          # a manifest without sizes
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ShardError, match=rf"{TRAIN}: not a readable Parquet shard"):
        ShardReader(copy, "train")


def test_missing_shard_names_the_file(copy):
    (copy / TRAIN).unlink()
    with pytest.raises(ShardError, match=rf"{TRAIN}: listed in the manifest but missing"):
        ShardReader(copy, "train")


def test_corrupt_row_group_names_file_and_group(copy):
    data = bytearray((copy / TRAIN).read_bytes())
    mid = len(data) // 2
    data[mid:mid + 512] = bytes(range(256)) * 2          # same size, garbage pages
    (copy / TRAIN).write_bytes(bytes(data))
    r = ShardReader(copy, "train", batch_size=64, shuffle=False)   # footer intact: opens
    with pytest.raises(ShardError, match=rf"{TRAIN}: row group \d+ cannot be read"):
        for _ in r.iter_epoch(0):
            pass


def test_missing_column_is_named(copy):
    rewrite(copy, pq.read_table(copy / TRAIN).drop_columns(["length"]))
    with pytest.raises(ShardError, match=rf"{TRAIN}: no column\(s\) \['length'\]"):
        ShardReader(copy, "train")


def test_variable_length_blocks_are_rejected(copy):
    t = pq.read_table(copy / TRAIN)
    i = t.schema.get_field_index("input_ids")
    ids = t.column("input_ids").combine_chunks()
    t = t.set_column(i, "input_ids", ids.cast(pa.list_(ids.type.value_type)))
    rewrite(copy, t)
    with pytest.raises(ShardError, match=rf"{TRAIN}: column 'input_ids' is list<.*not a "
                                         r"fixed-size list of block_size=64"):
        ShardReader(copy, "train")


def test_block_size_must_match_the_manifest(copy):
    t = pq.read_table(copy / TRAIN)
    ids = t.column("input_ids").combine_chunks()
    n = len(ids) // 2 * 2                                    # pairs of 64 -> blocks of 128
    wide = pa.FixedSizeListArray.from_arrays(ids.flatten()[: n * 64], 128)
    t = t.slice(0, n // 2).set_column(t.schema.get_field_index("input_ids"), "input_ids", wide)
    rewrite(copy, t)
    with pytest.raises(ShardError, match=rf"{TRAIN}: column 'input_ids' holds blocks of 128 "
                                         r"tokens, the manifest says block_size 64"):
        ShardReader(copy, "train")


@pytest.mark.parametrize("text", ['{"block_size": 64, "spl', "[]"])
def test_damaged_manifest_names_the_file(copy, text):
    (copy / "manifest.json").write_text(text)
    with pytest.raises(ShardError, match=r"manifest\.json: damaged shards manifest"):
        ShardReader(copy, "train")


def test_split_smaller_than_a_batch_raises_instead_of_spinning(shards):
    valid = ShardReader(shards, "valid", batch_size=1000)
    assert len(valid) == 0 and valid.num_blocks > 0
    with pytest.raises(ValueError, match=r"valid split has \d+ blocks for 1 worker\(s\): rank 0 "
                                         r"gets \d+, not one batch of 1000"):
        next(iter(valid))
    # Without drop_last the partial batch is an epoch's worth: endless iteration works.
    partial = iter(ShardReader(shards, "valid", batch_size=1000, drop_last=False))
    assert len(next(partial)["input_ids"]) == len(next(partial)["input_ids"]) == valid.num_blocks


def test_row_count_must_match_the_manifest(copy):
    rewrite(copy, pq.read_table(copy / TRAIN).slice(0, 100))
    with pytest.raises(ShardError, match=rf"{TRAIN}: 100 blocks, the manifest says \d+"):
        ShardReader(copy, "train")
