"""Pretraining through Ray Train (a real local Ray, 2 CPU workers, gloo) and the `pretrain`
Prefect flow (ephemeral Prefect), on real shards of the bundled sample crawl."""
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests._pretrain_shards import sample_shards_root
from tests.tensorboard_events import scalar_curves
from training import checkpoint as ckpt
from training import run_checkpoints
from training.metrics_log import read_metrics
from training.pretrain_config import PretrainConfig
from training.ray_launcher import WORKERS_FILE, launch
from training.run_checkpoints import RunExistsError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def shards_root(tmp_path_factory):
    return sample_shards_root(tmp_path_factory.getbasetemp())


def worker_starts(run_dir: Path) -> list[dict]:
    p = run_dir / WORKERS_FILE
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def test_two_workers_recover_from_a_killed_worker(shards_root, ray_local):
    cfg = PretrainConfig(root=str(shards_root), run="kill", model="tiny", batch_size=16,
                         micro_batch_size=8, steps=30, checkpoint_every=5, keep_last=2,
                         valid_every=10, valid_batches=2)
    killed: dict = {}

    def kill_rank1_after_first_checkpoint():
        deadline = time.time() + 240
        while time.time() < deadline:
            starts = worker_starts(cfg.run_dir)
            # Kill once Ray Train has *registered* the first checkpoint (files on disk are
            # not enough: a checkpoint counts when the controller has recorded the report).
            snapshot = cfg.run_dir / "checkpoint_manager_snapshot.json"
            registered = snapshot.is_file() and "checkpoints/step-" in snapshot.read_text()
            if registered and any(s["rank"] == 1 for s in starts):
                pid = next(s["pid"] for s in starts if s["rank"] == 1)
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, at_step=max(m["step"] for m in read_metrics(cfg.run_dir)))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_rank1_after_first_checkpoint, daemon=True)
    killer.start()
    summary = launch(cfg, num_workers=2, max_failures=2)
    killer.join(timeout=5)

    assert killed, "the worker was never killed"
    assert killed["at_step"] < 30, killed
    assert summary["finished"] and summary["steps"] == 30 and summary["world_size"] == 2
    starts = worker_starts(cfg.run_dir)
    resumed = [s for s in starts if s["resumed_from"]]
    assert summary["restarts"] >= 1 and len(resumed) >= 2, starts
    assert all("checkpoints/step-" in s["resumed_from"] for s in resumed)
    assert killed["pid"] not in {s["pid"] for s in resumed}
    # One trajectory: every update once, in order, the file restarted from the checkpoint.
    assert [m["step"] for m in read_metrics(cfg.run_dir)] == list(range(1, 31))
    final = Path(summary["checkpoint"])
    assert final.name == "step-00000030" and run_checkpoints.is_complete(final)
    assert {"rank-00000.pt", "rank-00001.pt"} <= {p.name for p in final.iterdir()}
    assert len(run_checkpoints.list_checkpoints(cfg.run_dir)) == 2          # keep_last through Ray
    # Ranks read disjoint data and each saved its own position.
    r0 = ckpt.read_checkpoint(final, rank=0, world_size=2)["reader"]
    r1 = ckpt.read_checkpoint(final, rank=1, world_size=2)["reader"]
    assert (r0["rank"], r1["rank"]) == (0, 1) and r0["offset"] == r1["offset"] == 30 * 8
    # Starting the same run again without resume is refused.
    with pytest.raises(RunExistsError):
        launch(cfg, num_workers=2)


def test_ray_resumes_a_run_the_in_process_loop_began(shards_root, ray_local):
    # `pretrain --no-ray` then `pretrain --resume` (Ray): Ray Train V2 rejects
    # resume_from_checkpoint, so the workers resume from the run's own newest checkpoint.
    from training.loop import train

    cfg = PretrainConfig(root=str(shards_root), run="mixed", model="tiny", batch_size=8,
                         micro_batch_size=8, steps=6, checkpoint_every=2, valid_every=0)
    train(cfg, stop_after=4)
    summary = launch(cfg, num_workers=1, resume=True)
    assert summary["finished"] and summary["steps"] == 6
    assert [s["resumed_from"] for s in worker_starts(cfg.run_dir)] == ["latest"]
    assert [m["step"] for m in read_metrics(cfg.run_dir)] == list(range(1, 7))


def test_pretrain_flow_end_to_end(shards_root, ray_local, prefect_info_logs):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from flows.pretrain import pretrain
    from training.hf_io import load_hf
    from training.loop import validation_batches
    from training.pretrain_config import resolve

    config = PretrainConfig.for_run(shards_root, "tiny", steps=10, batch_size=16,
                                    micro_batch_size=8, run="flow", checkpoint_every=5,
                                    valid_batches=2)
    state = pretrain(config=config, workers=1, log_every=4, return_state=True)
    out = state.result()
    # every 4 updates and the last, a line with step, loss and tokens/s in the flow-run log
    lines = step_lines(state.state_details.flow_run_id)
    metrics = {m["step"]: m for m in read_metrics(config.run_dir)}
    assert [step for step, *_ in lines] == [4, 8, 10], lines
    for step, total, loss, tokens_per_s in lines:
        assert total == 10 and loss == pytest.approx(metrics[step]["loss"], abs=1e-4)
        assert tokens_per_s == pytest.approx(metrics[step]["tokens_per_s"], abs=1)
    assert_tensorboard_matches_metrics(config.run_dir)
    png = Path(out["loss_png"])
    assert png == shards_root / "pretrain" / "flow" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    step_dir = Path(out["checkpoint"])
    assert step_dir.name == "step-00000010" and run_checkpoints.is_complete(step_dir)
    assert out["summary"]["steps"] == 10 and out["summary"]["valid_loss"] is not None

    hf = AutoModelForMaskedLM.from_pretrained(step_dir).eval()
    ours = load_hf(step_dir).eval()
    cfg = PretrainConfig(root=str(shards_root), micro_batch_size=4)
    batch = validation_batches(cfg, resolve(cfg), 0, 1)[0]
    ids = torch.from_numpy(batch["input_ids"])
    mask = ids.ne(1)
    with torch.no_grad():
        want = ours.logits(ids, mask)
        got = hf(input_ids=ids, attention_mask=mask.long()).logits
    assert torch.allclose(got[mask], want[mask], atol=1e-4)
    tok = AutoTokenizer.from_pretrained(step_dir)
    assert tok.mask_token_id == 999 and tok("Hello world")["input_ids"][0] == 0

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["pretrain-summary-flow", "pretrain-loss-flow",
                                        "pretrain-report-flow"])))}
    assert set(keys) == {"pretrain-summary-flow", "pretrain-loss-flow", "pretrain-report-flow"}
    assert keys["pretrain-loss-flow"].data.startswith("data:image/png;base64,")


@pytest.fixture
def prefect_info_logs():
    """The suite keeps Prefect at WARNING; flow-run log lines at INFO are what this reads."""
    import logging

    import prefect.main  # noqa: F401 - sets Prefect's logging up, which would reset the level

    logger = logging.getLogger("prefect.flow_runs")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


STEP_LINE = re.compile(r"^step (\d+)/(\d+): loss ([\d.]+), ([\d,]+) tokens/s")


def step_lines(flow_run_id, limit_s: float = 120) -> list[tuple[int, int, float, float]]:
    """(step, total, loss, tokens/s) of each step line in a flow run's log, as Prefect's API
    has it (logs reach it in batches: poll until the last update's line is there)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    deadline = time.time() + limit_s
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        found = [m.groups() for m in (STEP_LINE.match(log.message) for log in logs) if m]
        lines = [(int(a), int(b), float(c), float(d.replace(",", ""))) for a, b, c, d in found]
        if (lines and lines[-1][0] == lines[-1][1]) or time.time() > deadline:
            return lines
        time.sleep(0.5)


def test_cli_in_process_and_bad_input(shards_root, tmp_path, capsys):
    import argparse

    from flows.cli import pretrain as command
    from flows.cli.common import run_command
    from flows.cli.pretrain import add_arguments, last_step

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = ["--root", str(shards_root), "--config", "tiny", "--steps", "4", "--batch-size", "8",
            "--micro-batch-size", "8", "--run", "cli", "--no-ray", "--model-set", "dropout=0.0"]
    assert run_command(command, parser.parse_args(args)) == 0
    run = shards_root / "pretrain" / "cli"
    assert last_step(run / "metrics.jsonl") == 4 and (run / "loss.png").is_file()
    saved = json.loads((run_checkpoints.latest_checkpoint(run) / "pretrain_config.json").read_text())
    assert saved["model_overrides"] == {"dropout": 0.0}
    # the same run again without --resume, a batch that does not divide, missing shards
    assert run_command(command, parser.parse_args(args)) == 2
    assert "already holds a run" in capsys.readouterr().err
    bad = args[:6] + ["--batch-size", "12"] + args[8:]
    assert run_command(command, parser.parse_args(bad + ["--run", "other"])) == 2
    assert "not a multiple" in capsys.readouterr().err
    assert run_command(command, parser.parse_args(["--root", str(tmp_path), "--no-ray"])) == 2
    assert "shard-corpus" in capsys.readouterr().err
    # --resume continues to a longer schedule's end
    more = [a if a != "4" else "6" for a in args] + ["--resume"]
    assert run_command(command, parser.parse_args(more)) == 0
    assert last_step(run / "metrics.jsonl") == 6
    assert np.isfinite([m["loss"] for m in read_metrics(run)]).all()
    # TensorBoard's curve is the run's one trajectory, across the resume
    assert_tensorboard_matches_metrics(run)


def assert_tensorboard_matches_metrics(run_dir: Path) -> None:
    """The event files beside metrics.jsonl, read back as TensorBoard reads them, hold the
    run's loss and tokens/s curves: every update once, in order."""
    curves = scalar_curves(run_dir)
    metrics = [m for m in read_metrics(run_dir) if not m.get("skipped")]
    for key, tag in (("loss", "train/loss"), ("tokens_per_s", "train/tokens_per_s")):
        assert [s for s, _ in curves[tag]] == [m["step"] for m in metrics], tag
        assert [v for _, v in curves[tag]] == pytest.approx([m[key] for m in metrics], rel=1e-6)
