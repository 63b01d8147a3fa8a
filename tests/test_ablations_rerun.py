"""`ablations` reruns and failures, unit level: the skip key covers the shard set's tokenizer
and corpus inputs; a failing arm becomes a failed arm (tables still written, exit 3);
arguments and inputs are checked before anything runs."""
from __future__ import annotations

import json

import pytest

from evaluation.ablations import ARMS, Scale, arm_key, arm_settings, build_table, to_markdown

MANIFEST = {"tokenizer_sha256": "a" * 64, "vocab_size": 8000,
            "params": {"format": "segment-pair", "block_size": 64, "static_masks": 0,
                       "tokenizer_sha256": "a" * 64,
                       "inputs": [["documents/part-0.parquet", 12345]]}}
FINETUNE = {"data_dir": "/x", "tasks": "sst2", "seeds": [0], "lrs": None}


def _settings():
    return arm_settings(ARMS["segment-pair"], Scale(steps=32, batch_size=4, micro_batch_size=4))


def test_skip_key_covers_tokenizer_and_corpus(tmp_path):
    from flows.ablations import finished_arm

    s = _settings()
    done = tmp_path / "arm.json"
    done.write_text(json.dumps({"key": arm_key(s, FINETUNE, MANIFEST), "ppl": 9.0}))
    assert finished_arm(done, arm_key(s, FINETUNE, MANIFEST))["ppl"] == 9.0
    retrained = dict(MANIFEST, tokenizer_sha256="b" * 64, vocab_size=2000,
                     params=dict(MANIFEST["params"], tokenizer_sha256="b" * 64))
    assert finished_arm(done, arm_key(s, FINETUNE, retrained)) is None
    new_corpus = dict(MANIFEST, params=dict(MANIFEST["params"],
                                            inputs=[["documents/part-0.parquet", 999]]))
    assert finished_arm(done, arm_key(s, FINETUNE, new_corpus)) is None


def test_failing_arm_is_a_failed_arm(tmp_path, monkeypatch):
    import flows.pretrain
    from flows.ablations import run_arm
    from prefect import flow
    from training.step import NonFiniteLossError

    s = _settings()
    shards = tmp_path / "ablations" / "_data" / s["data"] / "shards"
    shards.mkdir(parents=True)
    (shards / "manifest.json").write_text(json.dumps(MANIFEST))
    for d in ("corpus", "tokenizer"):
        (shards.parent / d).mkdir()

    def diverge(**kw):
        raise NonFiniteLossError("5 consecutive steps with a non-finite loss")

    monkeypatch.setattr(flows.pretrain, "pretrain", diverge)

    @flow
    def one():
        return run_arm(str(tmp_path), s, FINETUNE, {"workers": 1, "gpu": False,
                                                    "address": None, "use_ray": False})

    r = one()
    assert "NonFiniteLossError" in r["error"] and r["ppl"] is None
    assert not (tmp_path / "ablations" / s["arm"] / "arm.json").exists()
    rows = build_table("1", {s["arm"]: r}, ["sst2"])
    assert rows[1]["error"] and rows[0]["error"] is None
    assert "FAILED: NonFiniteLossError" in to_markdown("1", rows, ["sst2"])


def test_cli_exit_3_when_an_arm_failed(tmp_path, monkeypatch, capsys):
    import flows.ablations
    from flows.cli import main
    from flows.cli.common import EXIT_PARTIAL

    md = tmp_path / "table3.md"
    md.write_text("### Table 3\n")

    def fake(**kw):
        return {"tables": {"table3": {"md": str(md), "parquet": "p", "png": "c"}},
                "skipped": [], "failed": {"full-sentences-bsz32x": "NonFiniteLossError: x"},
                "tasks": ["sst2"],
                "arms": {"full-sentences": {"ppl": 5.0, "scores": {"sst2": 80.0}},
                         "full-sentences-bsz32x": {"ppl": None, "scores": {}}}}

    monkeypatch.setattr(flows.ablations, "ablations", fake)
    assert main(["ablations", "--root", str(tmp_path), "--tables", "3"]) == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert "full-sentences-bsz32x FAILED: NonFiniteLossError" in err


def test_static_masks_checked_up_front():
    arms = [ARMS["segment-pair-static"], ARMS["segment-pair"]]
    with pytest.raises(ValueError, match="--static-masks K"):
        Scale(static_masks=0, micro_batch_size=8).check(arms)
    Scale(static_masks=0, micro_batch_size=8).check([ARMS["segment-pair"]])   # not needed


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--batch-size", "0"], ["--tables", ","],
                                  ["--tables", "4"], ["--block-size", "0"],
                                  ["--finetune-batch-sizes", "0"], ["--static-masks", "-1"]])
def test_bad_arguments_rejected(argv, capsys):
    from flows.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["ablations", *argv])
    assert e.value.code == 2


def _fake_root(tmp_path):
    (tmp_path / "corpus" / "documents").mkdir(parents=True)
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer_info.json").write_text(json.dumps({"vocab_size": 1000}))
    return tmp_path


@pytest.mark.parametrize("argv,needle", [
    (["--data-dir", "/nonexistent"], "no such directory"),
    (["--tables", "1", "--static-masks", "0"], "--static-masks K"),
    (["--tasks", "mnli"], "task data missing")])
def test_inputs_checked_before_anything_runs(tmp_path, monkeypatch, capsys, argv, needle):
    import flows.ablations
    from flows.cli import main
    from flows.cli.common import EXIT_BAD_INPUT

    def boom(*a, **kw):
        raise AssertionError("shard sets built before the inputs were checked")

    monkeypatch.setattr(flows.ablations, "prepare_data", boom)
    root = _fake_root(tmp_path)
    assert main(["ablations", "--root", str(root), "--no-ray", *argv]) == EXIT_BAD_INPUT
    assert needle in capsys.readouterr().err
    assert not (root / "ablations" / "_data").exists()
