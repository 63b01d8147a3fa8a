"""TensorBoard event files beside `metrics.jsonl`, so a run's curves open in TensorBoard like
any other PyTorch run's: `tensorboard --logdir <root>/pretrain` shows every run by its name.

Written with tensorboardX (what Ray Train ships; `torch.utils.tensorboard` needs the whole
`tensorboard` package), by rank 0 only, as an `on_metrics` callback of the loop: a sink around
the training core, which itself needs nothing but torch, numpy, pyarrow and safetensors.

A resumed run opens a new event file that starts with a session-start marker at its first
update: TensorBoard then hides the updates the interrupted attempt logged past its last
checkpoint, so the curve it draws is the run's one trajectory, as in `metrics.jsonl`.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

# metrics.jsonl key -> TensorBoard tag (the "train/" and "valid/" sections of TensorBoard)
TAGS = {"loss": "train/loss", "perplexity": "train/perplexity", "lr": "train/lr",
        "grad_norm": "train/grad_norm", "tokens_per_s": "train/tokens_per_s",
        "mfu": "train/mfu", "valid_loss": "valid/loss", "valid_perplexity": "valid/perplexity"}
FLUSH_SECS = 10      # how stale a live TensorBoard may be


class TensorBoardLog:
    """`log(metrics)` per update; `close()` at the end. Best effort, like the Ray metrics: a
    writer that cannot start warns once and the run goes on without it."""

    def __init__(self, run_directory: str | os.PathLike):
        self.run_dir = Path(run_directory)
        self.writer = None
        self.failed = False

    def __call__(self, m: dict) -> None:
        if self.failed or m.get("skipped") or m.get("step") is None:
            return
        if self.writer is None and not self._open(int(m["step"])):
            return
        for key, tag in TAGS.items():
            v = m.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(tag, float(v), int(m["step"]))

    def _open(self, first_step: int) -> bool:
        """The event file of this attempt; `first_step` marks where its curve takes over."""
        try:
            from tensorboardX import SummaryWriter

            # the pid keeps two attempts started within one second in separate files
            self.writer = SummaryWriter(logdir=str(self.run_dir), purge_step=first_step,
                                        flush_secs=FLUSH_SECS, filename_suffix=f".{os.getpid()}")
        except (ImportError, OSError) as exc:
            warnings.warn(f"no TensorBoard event files for {self.run_dir}: {exc}")
            self.failed = True
            return False
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TensorBoardLog", "TAGS"]
