"""Bad input to pretraining: too little data for a batch (a clear error, never a hang), and
damaged checkpoints (named file; "latest" falls back to the previous good checkpoint)."""
import hashlib
import json
import shutil

import pytest

from tests._pretrain_shards import sample_shards_root
from tests._shards_corpus import write_corpus
from training import run_checkpoints
from training.loop import train
from training.pretrain_config import PretrainConfig, PretrainConfigError, resolve

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def shards_root(tmp_path_factory):
    return sample_shards_root(tmp_path_factory.getbasetemp())


def config(root, run, **kw) -> PretrainConfig:
    base = {"root": str(root), "run": run, "model": "tiny", "batch_size": 16,
            "micro_batch_size": 8, "steps": 8, "checkpoint_every": 2, "keep_last": 5,
            "valid_every": 0, "valid_batches": 1}
    return PretrainConfig(**{**base, **kw})


# ------------------------------------------------------------------ too little data

@pytest.mark.timeout(60)      # the bug was an endless loop in the reader
@pytest.mark.parametrize("valid_fraction, train_blocks", [(0.1, 1), (0.99, 0)])
def test_corpus_smaller_than_a_batch_is_a_config_error(shards_root, tmp_path, valid_fraction,
                                                       train_blocks):
    from corpus.sharding import shard_corpus

    root = tmp_path / "one-doc"
    shutil.copytree(shards_root / "tokenizer", root / "tokenizer")
    write_corpus(root, ["hi."], n_parts=1)
    m = shard_corpus(root, block_size=64, valid_fraction=valid_fraction, workers=1)
    assert m["splits"]["train"]["blocks"] == train_blocks
    with pytest.raises(PretrainConfigError,
                       match=rf"train split has {train_blocks} blocks for 1 worker\(s\); each "
                             r"needs at least micro_batch_size=8: add data or lower "
                             r"--micro-batch-size/--workers"):
        train(config(root, "tiny", batch_size=8, steps=1))


def test_workers_share_of_train_split_smaller_than_a_micro_batch(shards_root):
    manifest = json.loads((shards_root / "shards" / "manifest.json").read_text())
    half = manifest["splits"]["train"]["blocks"] // 2
    big = 1 << (half.bit_length())                       # > half a split per worker
    with pytest.raises(PretrainConfigError, match=rf"blocks for 2 worker\(s\); each needs at "
                                                  rf"least micro_batch_size={big}"):
        resolve(config(shards_root, "x", batch_size=2 * big, micro_batch_size=big), 2)


# ------------------------------------------------------------------ damaged checkpoints

@pytest.fixture(scope="module")
def saved_run(shards_root):
    """A run interrupted after update 6, with checkpoints at 2, 4 and 6."""
    cfg = config(shards_root, "damage-base")
    train(cfg, stop_after=6)
    assert [s for s, _ in run_checkpoints.list_checkpoints(cfg.run_dir)] == [2, 4, 6]
    return cfg


def copy_run(cfg, name) -> PretrainConfig:
    new = cfg.replace(run=name)
    shutil.rmtree(new.run_dir, ignore_errors=True)
    shutil.copytree(cfg.run_dir, new.run_dir)
    return new


def truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def zero_64_bytes(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    p.write_bytes(bytes(data))


DAMAGE = {
    "truncated-weights": ("model.safetensors", truncate, r"\d+ bytes, checkpoint.json recorded"),
    "zeroed-weights": ("model.safetensors", zero_64_bytes, "sha256 differs"),
    "truncated-rank-file": ("rank-00000.pt", truncate, "truncated or overwritten"),
    "empty-scheduler": ("scheduler.pt", lambda p: p.write_bytes(b""), "0 bytes"),
    "truncated-trainer-state": ("trainer_state.json", truncate, "truncated"),
    "truncated-metrics": ("metrics.jsonl", truncate, "truncated"),
    "truncated-manifest": ("checkpoint.json", truncate, r"cannot be read \(JSONDecodeError"),
    "manifest-not-an-object": ("checkpoint.json", lambda p: p.write_text("[]"),
                               "damaged: not a checkpoint manifest"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_newest_checkpoint_falls_back_with_a_named_warning(saved_run, kind):
    name, damage, why = DAMAGE[kind]
    cfg = copy_run(saved_run, f"damaged-{kind}")
    step6 = cfg.run_dir / "checkpoints" / "step-00000006"
    damage(step6 / name)
    # An explicit checkpoint that does not verify is an error naming the file.
    with pytest.raises(run_checkpoints.CheckpointError, match=rf"step-00000006/{name}: .*{why}"):
        train(cfg, resume_from=step6)
    # "latest" warns (file and reason) and resumes from step 4; nothing is lost.
    with pytest.warns(UserWarning, match=rf"not resuming from step-00000006: .*{name}: .*{why}"):
        s = train(cfg, resume_from="latest", stop_after=5)
    assert s["steps"] == 5 and s["checkpoint"].endswith("step-00000005")


def test_manifest_records_size_and_sha256(saved_run):
    d = saved_run.run_dir / "checkpoints" / "step-00000006"
    digests = json.loads((d / "checkpoint.json").read_text())["digests"]
    assert set(digests) == {p.name for p in d.iterdir()} - {"checkpoint.json"}
    for name, rec in digests.items():
        data = (d / name).read_bytes()
        assert rec == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_checkpoint_without_digests_still_loads_and_load_errors_name_the_file(saved_run):
    cfg = copy_run(saved_run, "no-digests")
    step6 = cfg.run_dir / "checkpoints" / "step-00000006"
    for d in (step6, step6.with_name("step-00000004")):     # as written before digests
        m = json.loads((d / "checkpoint.json").read_text())
        del m["digests"]
        (d / "checkpoint.json").write_text(json.dumps(m))
    (step6 / "scheduler.pt").write_bytes(b"")
    with pytest.raises(run_checkpoints.CheckpointError, match=r"step-00000006/scheduler.pt: cannot be "
                                                   r"read \(EOFError"):
        train(cfg, resume_from=step6)
    with pytest.warns(UserWarning, match=r"scheduler.pt: cannot be read"):
        s = train(cfg, resume_from="latest", stop_after=5)
    assert s["steps"] == 5


def test_no_usable_checkpoint_is_an_error_not_a_fresh_start(saved_run):
    cfg = copy_run(saved_run, "all-damaged")
    for _, d in run_checkpoints.list_checkpoints(cfg.run_dir):
        truncate(d / "optimizer.pt")
    with pytest.warns(UserWarning), \
            pytest.raises(run_checkpoints.CheckpointError, match="no checkpoint can be resumed"):
        train(cfg, resume_from="latest")
    assert [s for s, _ in run_checkpoints.list_checkpoints(cfg.run_dir)] == [2, 4, 6]   # kept


def test_newest_checkpoint_goes_by_step_within_a_run_even_in_a_copied_run_root(tmp_path):
    """`cp -r` (or a restore) gives files new times in any order: within a run the newest
    checkpoint is still the highest step; across runs, the run written last."""
    import os

    from tests.fixtures_eval import pretrain_style_checkpoint

    a = [pretrain_style_checkpoint(tmp_path, "a", step) for step in (10, 20)]
    [b] = [pretrain_style_checkpoint(tmp_path, "b", 5)]
    for when, ck in enumerate([a[1], a[0], b]):          # copied: step 20 before step 10
        os.utime(ck / "model.safetensors", ns=(when * 10**9, when * 10**9))
    assert run_checkpoints.checkpoint_dirs(tmp_path) == [*a, b]
    assert run_checkpoints.newest_checkpoint(tmp_path) == b
    os.utime(a[1] / "model.safetensors", ns=(9 * 10**9, 9 * 10**9))   # run a trained on
    assert run_checkpoints.newest_checkpoint(tmp_path) == a[1]
