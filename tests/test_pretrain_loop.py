"""The Ray-free pretraining loop on real shards of the bundled sample crawl: exact resume,
non-finite loss handling, learning against a unigram baseline, config errors."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests._pretrain_shards import sample_shards_root
from training import checkpoint as ckpt
from training import run_checkpoints
from training.loop import train, validation_batches
from training.metrics_log import read_metrics
from training.pretrain_config import PretrainConfig, PretrainConfigError, resolve
from training.shard_reader import ShardReader
from training.step import NonFiniteLossError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def shards_root(tmp_path_factory):
    return sample_shards_root(tmp_path_factory.getbasetemp())



def small_config(root, run, **kw) -> PretrainConfig:
    base = dict(root=str(root), run=run, model="tiny", batch_size=16, micro_batch_size=8,
                steps=12, checkpoint_every=4, keep_last=5, valid_every=4, valid_batches=2)
    return PretrainConfig(**{**base, **kw})


def collect(store: list):
    return lambda m: store.append(m)


def test_resume_gives_the_same_losses(shards_root, tmp_path):
    root = shards_root
    full: list[dict] = []
    s_full = train(small_config(root, "uninterrupted"), on_metrics=collect(full))
    assert s_full["steps"] == 12 and s_full["accumulation"] == 2

    # Interrupted after update 6 (a checkpoint is written there), resumed from it.
    cfg = small_config(root, "interrupted")
    first: list[dict] = []
    s1 = train(cfg, on_metrics=collect(first), stop_after=6)
    assert s1["steps"] == 6 and not s1["finished"]
    assert [s for s, _ in run_checkpoints.list_checkpoints(cfg.run_dir)] == [4, 6]
    resumed: list[dict] = []
    s2 = train(cfg, resume_from="latest", on_metrics=collect(resumed))
    assert s2["finished"] and [m["step"] for m in resumed] == list(range(7, 13))

    # A crash between checkpoints: resume from step 4 redoes 5 and 6 identically.
    cfg4 = small_config(root, "from-step-4")
    again: list[dict] = []
    train(cfg4, resume_from=run_checkpoints.list_checkpoints(cfg.run_dir)[0][1], on_metrics=collect(again))
    assert [m["step"] for m in again] == list(range(5, 13))

    keys = ("loss", "grad_norm", "lr", "tokens")
    want = {m["step"]: m for m in full}
    for m in first + resumed + again:
        for k in keys:
            assert m[k] == want[m["step"]][k], (m["step"], k)      # exact, not approximate
        if "valid_loss" in m and "valid_loss" in want[m["step"]]:
            assert m["valid_loss"] == want[m["step"]]["valid_loss"]
    # Same final weights, bit for bit; metrics.jsonl tells the whole trajectory once.
    a = load_file(str(run_checkpoints.latest_checkpoint(small_config(root, "uninterrupted").run_dir)
                      / "model.safetensors"))
    b = load_file(str(run_checkpoints.latest_checkpoint(cfg.run_dir) / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["step"] for m in read_metrics(cfg.run_dir)] == list(range(1, 13))
    state = json.loads((run_checkpoints.latest_checkpoint(cfg.run_dir) / "trainer_state.json").read_text())
    assert state["step"] == 12 and state["train_step"]["steps"] == 12


def test_pipelined_and_read_every_step_loops_agree(shards_root):
    """Fused AdamW lets the loop launch update k+1 before reading k; a foreach AdamW makes it
    read every update first. Same data, masks, schedule and checkpoints either way (the two
    AdamW kernels round differently, so values agree closely, not bit for bit)."""
    runs = {}
    for fused in (True, False):
        got: list[dict] = []
        cfg = small_config(shards_root, f"fused-{fused}", steps=6, checkpoint_every=3,
                           optim_overrides={"fused": fused}, pipeline=fused)
        train(cfg, on_metrics=collect(got))
        runs[fused] = (got, [s for s, _ in run_checkpoints.list_checkpoints(cfg.run_dir)])
    (a, ck_a), (b, ck_b) = runs[True], runs[False]
    assert ck_a == ck_b == [3, 6]
    assert [m["step"] for m in a] == [m["step"] for m in b] == list(range(1, 7))
    for x, y in zip(a, b):
        assert x["tokens"] == y["tokens"] and x["lr"] == y["lr"] and x["epoch"] == y["epoch"]
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-3)


def test_step_times_belong_to_their_updates_on_cpu(shards_root):
    # On a CPU launch() computes the update; pipelined, the update read at a checkpoint was
    # credited ~0 s (millions of tokens/s) and its predecessor two updates' time.
    got: list[dict] = []
    train(small_config(shards_root, "cpu-times", steps=6, checkpoint_every=3, valid_every=0),
          on_metrics=collect(got))
    times = [m["step_time_s"] for m in got]
    assert min(times[1:]) > 0.25 * float(np.median(times)), times


def test_pipelined_loop_after_a_late_skip(shards_root):
    """A NaN update is only seen after the next one is launched: the pipelined loop skips and
    counts it like the read-every-step loop, and the LRs agree except for that one next
    update, which used the next LR (the documented difference)."""
    runs = {}
    for fused in (True, False):
        got: list[dict] = []
        cfg = small_config(shards_root, f"late-skip-{fused}", steps=5, checkpoint_every=0,
                           valid_every=0, nonfinite_at=(1,), optim_overrides={"fused": fused},
                           pipeline=fused)
        out = train(cfg, on_metrics=collect(got))
        assert out["steps"] == 5 and out["skipped_total"] == 1
        runs[fused] = got
    a, b = runs[True], runs[False]
    assert [m["skipped"] for m in a] == [m["skipped"] for m in b] == [False, True] + [False] * 4
    assert [m["step"] for m in a] == [m["step"] for m in b] == [1, 1, 2, 3, 4, 5]
    lr_diff = [i for i, (x, y) in enumerate(zip(a, b)) if x["lr"] != y["lr"]]
    assert lr_diff == [2]                   # the update launched right after the skipped one


def test_checkpoint_contents_and_keep_last(shards_root):
    cfg = small_config(shards_root, "keep", steps=10, checkpoint_every=2, keep_last=2)
    train(cfg)
    steps = [s for s, _ in run_checkpoints.list_checkpoints(cfg.run_dir)]
    assert steps == [8, 10]
    d = run_checkpoints.latest_checkpoint(cfg.run_dir)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "optimizer.pt",
                 "scheduler.pt", "trainer_state.json", "pretrain_config.json", "metrics.jsonl",
                 "rank-00000.pt", "checkpoint.json"):
        assert (d / name).is_file(), name
    assert not list((cfg.run_dir / "checkpoints").glob(".tmp-*"))
    state = ckpt.read_checkpoint(d, rank=0, world_size=1)
    assert state["reader"]["offset"] == 10 * 16 and state["reader"]["epoch"] == 0
    assert PretrainConfig.from_dict(state["config"]) == cfg
    with pytest.raises(ValueError, match="same number of workers"):
        ckpt.read_checkpoint(d, rank=0, world_size=2)


def test_nonfinite_step_is_skipped_and_counted(shards_root):
    cfg = small_config(shards_root, "one-nan", steps=8, nonfinite_at=(3,))
    seen: list[dict] = []
    s = train(cfg, on_metrics=collect(seen))
    assert s["steps"] == 8 and s["skipped_total"] == 1
    bad = [m for m in seen if m["skipped"]]
    assert len(bad) == 1 and bad[0]["iteration"] == 3 and bad[0]["loss"] is None
    assert all(np.isfinite(m["loss"]) for m in seen if not m["skipped"])
    assert seen[-1]["skipped_total"] == 1 and seen[-1]["iteration"] == 8


def test_consecutive_nonfinite_stops_with_last_good_checkpoint(shards_root):
    cfg = small_config(shards_root, "diverged", steps=20, checkpoint_every=4,
                       max_consecutive_nonfinite=3, nonfinite_at=tuple(range(9, 100)))
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps"):
        train(cfg)
    latest = run_checkpoints.latest_checkpoint(cfg.run_dir)
    assert latest is not None and latest.name == "step-00000008" and run_checkpoints.is_complete(latest)
    assert [s for s, _ in run_checkpoints.list_checkpoints(cfg.run_dir)] == [4, 8]
    last = read_metrics(cfg.run_dir)[-1]
    assert "error" in last and last["skipped_total"] == 3
    # The last good checkpoint resumes (without the injected fault) to the end.
    s = train(cfg.replace(nonfinite_at=()), resume_from=latest)
    assert s["finished"] and s["skipped_total"] == 0


def unigram_loss(cfg: PretrainConfig) -> float:
    """Cross-entropy of an add-one unigram model fitted on the training blocks, on the same
    masked validation targets the model is scored on."""
    res = resolve(cfg)
    counts = np.zeros(res.model.vocab_size)
    specials = list(res.masking.special_ids)
    for b in ShardReader(cfg.root, "train", batch_size=512, shuffle=False,
                         drop_last=False).iter_epoch(0):
        ids = b["input_ids"]
        counts += np.bincount(ids[~np.isin(ids, specials)], minlength=len(counts))
    p = (counts + 1) / (counts + 1).sum()
    targets = np.concatenate([b["mlm_targets"][: b["num_masked"]]
                              for b in validation_batches(cfg, res, 0, 1)])
    return float(-np.log(p[targets]).mean())


def test_tiny_model_beats_unigram(shards_root):
    cfg = small_config(shards_root, "learn", batch_size=32, micro_batch_size=32, steps=300,
                       checkpoint_every=0, valid_every=100, valid_batches=0)
    s = train(cfg)
    baseline = unigram_loss(cfg)
    assert s["valid_loss"] < baseline - 0.05, (s["valid_loss"], baseline)


def test_config_errors_name_the_problem(shards_root):
    with pytest.raises(PretrainConfigError, match="not a multiple"):
        resolve(small_config(shards_root, "x", batch_size=20, micro_batch_size=8))
    with pytest.raises(PretrainConfigError, match="no static masks"):
        resolve(small_config(shards_root, "x", masking="static"))
    with pytest.raises(PretrainConfigError, match="unknown ModelConfig field"):
        resolve(small_config(shards_root, "x", model_overrides={"hidden": 3}))
    r = resolve(small_config(shards_root, "x", batch_size=64, micro_batch_size=8), world_size=2)
    assert r.accumulation == 4 and r.model.vocab_size == 1000 and r.optim.total_steps == 12
    # 0 is a value, not "use the preset" (it used to run the preset's 1000 steps)
    with pytest.raises(PretrainConfigError, match="steps must be >= 1, got 0"):
        resolve(small_config(shards_root, "x", steps=0))
    with pytest.raises(PretrainConfigError, match="batch_size must be >= 1, got 0"):
        resolve(small_config(shards_root, "x", batch_size=0))
    # the default micro-batch fits a small or odd batch: gcd(batch per worker, 16)
    for batch, world, micro in [(8, 1, 8), (48, 1, 16), (24, 1, 8), (16, 2, 8)]:
        r = resolve(small_config(shards_root, "x", batch_size=batch, micro_batch_size=None),
                    world_size=world)
        assert (r.micro_batch_size, r.accumulation) == (micro, batch // world // micro)


def test_uri_roots_are_refused_where_outputs_are_local_files():
    # checkpoints and Ray Train state are local files: s3://b/r would become a folder "s3:"
    from flows.finetune_eval import InputError, check_inputs

    with pytest.raises(PretrainConfigError, match="pretrain needs a filesystem path"):
        resolve(PretrainConfig(root="s3://bucket/run"))
    with pytest.raises(InputError, match="finetune-eval needs a filesystem path"):
        check_inputs("s3://bucket/run", "synthetic")


def test_a_tokenizer_trained_again_after_sharding_is_refused(shards_root, tmp_path):
    # The checkpoints ship <root>/tokenizer; if it no longer matches the shards' ids, every
    # checkpoint of the run would be unusable.
    import shutil
    root = tmp_path / "root"
    shutil.copytree(shards_root / "tokenizer", root / "tokenizer")
    (root / "shards").mkdir()
    shutil.copy(shards_root / "shards" / "manifest.json", root / "shards")
    assert resolve(small_config(root, "x")).model.vocab_size == 1000
    info = root / "tokenizer" / "tokenizer_info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "tokenizer_sha256": "0" * 64}))
    with pytest.raises(PretrainConfigError, match="not the tokenizer the shards were encoded "
                                                  "with .*rerun shard-corpus"):
        resolve(small_config(root, "x"))


def test_static_masks_from_the_shards(shards_root, tmp_path):
    import shutil

    from corpus.sharding import shard_corpus

    root = tmp_path / "static"
    for d in ("corpus/documents", "tokenizer"):
        shutil.copytree(shards_root / d, root / d)
    shard_corpus(root, fmt="full-sentences", block_size=64, valid_fraction=0.1, static_masks=2,
                 workers=1, rows_per_group=64)
    cfg = small_config(root, "static", masking="static", steps=4, valid_batches=1)
    res = resolve(cfg)
    assert res.static
    # The batch trained on is the stored mask (epoch 0 -> mask 0), not a fresh one.
    raw = next(iter(ShardReader(root, "train", batch_size=8, seed=0)))
    from training.loop import _masked_batch
    b = _masked_batch(raw, None, res, 0)
    np.testing.assert_array_equal(b["input_ids"], raw["static_input_ids"])
    seen: list[dict] = []
    s = train(cfg, on_metrics=collect(seen))
    assert s["finished"] and all(np.isfinite(m["loss"]) for m in seen)
