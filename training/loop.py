"""The pretraining loop: shards -> masking -> accumulated optimizer updates -> validation,
checkpoints and metrics. Imports only torch, numpy, pyarrow, safetensors and our training
modules, so it runs on a bare GPU box; Ray Train (`training/ray_launcher.py`) calls this same
function inside each worker.

    reader (rank-disjoint, resumable)  ->  Masker (dynamic, keyed by seed/epoch/block) or the
    shards' static masks  ->  TrainStep over `accumulation` micro-batches (DDP sync on the last)
    ->  every `valid_every` updates: validation MLM loss on fixed masks (seed, epoch 0)
    ->  every `checkpoint_every` updates: a checkpoint (see training/checkpoint.py)
    ->  per update: a metrics dict (loss, perplexity, lr, grad norm, tokens/s, MFU) to
        `on_metrics` and, on rank 0, a line of `<root>/pretrain/<run>/metrics.jsonl`.

The effective batch (`batch_size` sequences per optimizer update) is independent of the
worker count and micro-batch: accumulation = batch_size / (world_size x micro_batch_size),
which must divide exactly.

Rank and world size come from torch.distributed when it is initialised (torchrun, Ray Train);
the model is then wrapped in DDP (gloo on CPU, NCCL on GPU: whatever the process group uses).

`train()` is `Trainer(cfg, ...).train()`: `Trainer.__init__` builds (and on resume restores)
the pieces, `Trainer.train` is the loop, and each of its steps is one method (`produce`,
`launch`, `finish`, `boundary`, `save_checkpoint`).
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from runroot import layout
from training import checkpoint as ckpt
from training.hf_io import load_initial_weights
from training.masking import Masker, batch_from_static_labels
from training.model import build_model
from training.optim import build_optimizer, build_scheduler
from training.metrics_log import METRICS_FILE, MetricsLog
from training.prefetch import Prefetcher, pinned
from training.pretrain_config import PretrainConfig, Resolved, resolve
from training.shard_reader import ShardReader
from training.step import NonFiniteLossError, PendingStep, StepMetrics, TrainStep, eval_step

# Dense bf16 peak per device (NVIDIA datasheets, see training_anchors.md §8), for MFU.
_PEAK_FLOPS = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12),
               ("L40S", 362e12), ("A10", 125e12))


def pick_device(spec: str | torch.device | None = "auto") -> torch.device:
    if isinstance(spec, torch.device):
        return spec
    if spec in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and dev.index is None:   # "cuda": this process's GPU
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))
                           if torch.cuda.device_count() > 1 else 0)
    return dev


def peak_flops_for(device: torch.device, override: float | None) -> float | None:
    if override:
        return float(override)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in _PEAK_FLOPS:
            if key in name:
                return flops
    return None


def _compile_for(spec: bool | str, device: torch.device, world: int) -> bool | str:
    """"auto": CUDA graphs on one GPU (measured fastest); several GPUs get the default mode,
    since CUDA graphs with DDP's no_sync accumulation have not been checked on GPUs yet."""
    if spec == "auto":
        if device.type != "cuda":
            return False
        return "cudagraphs" if world == 1 else "default"
    return spec


def _seed_everything(seed: int, rank: int) -> None:
    """Dropout etc. differ per rank (like torchrun + seed + rank); model init uses its own
    forked generator (build_model(seed=...)), so every rank starts from the same weights."""
    s = (seed * 1_000_003 + rank) % (2 ** 63)
    torch.manual_seed(s)
    np.random.seed(s % (2 ** 32))
    random.seed(s)


class _NonFiniteInjector:
    """Fault injection for tests and drills: makes the embedding output NaN while armed."""

    def __init__(self, module: torch.nn.Module):
        self.armed = False
        module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        return output * float("nan") if self.armed else output


MetricsFn = Callable[[dict], None]


def _masked_batch(batch: dict, masker: Masker, res: Resolved, epoch: int) -> dict:
    nsp = batch.get("nsp_label") if res.nsp else None
    if res.static:
        return batch_from_static_labels(batch["static_input_ids"], batch["static_labels"],
                                        res.masking, res.model.pad_id, nsp)
    return masker(batch["input_ids"], batch["block_index"], epoch, nsp)


def validation_batches(cfg: PretrainConfig, res: Resolved, rank: int, world: int) -> list[dict]:
    """Fixed validation batches (this rank's share of the valid split, masks of seed/epoch 0)
    so the validation loss is comparable across steps and runs."""
    if res.manifest["splits"].get("valid", {}).get("blocks", 0) == 0:
        return []
    reader = ShardReader(cfg.root, "valid", batch_size=res.micro_batch_size, rank=rank,
                         world_size=world, seed=cfg.seed, shuffle=False, drop_last=False)
    masker = Masker(res.masking, cfg.seed, res.model.pad_id)
    out = []
    for b in reader.iter_epoch(0):
        out.append(_masked_batch(b, masker, res, 0))
        if cfg.valid_batches and len(out) >= cfg.valid_batches:
            break
    return out


def validate(model, batches: list[dict], device: torch.device, amp_dtype) -> float:
    """Mean MLM loss per masked token over all ranks' validation batches."""
    loss_sum, n = 0.0, 0
    for b in batches:
        s, k = eval_step(model, b, amp_dtype)
        loss_sum, n = loss_sum + s, n + k
    if _distributed():
        t = torch.tensor([loss_sum, float(n)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        loss_sum, n = float(t[0]), int(t[1])
    return loss_sum / max(n, 1)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _host_group():
    """A gloo group for host-side metric sums (every rank must call this, at the same point).
    Under NCCL an all-reduce would queue behind the update already launched on the GPU and
    wait for it, undoing the pipelining; None: the default group already reduces on CPU."""
    if not _distributed() or dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo")


def _global_sums(values: list[float], group) -> list[float]:
    if _distributed():
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, group=group)
        return t.tolist()
    return values


def _perplexity(loss: float) -> float:
    return math.exp(loss) if math.isfinite(loss) and loss < 700 else float("inf")


@dataclass
class LaunchedUpdate:
    """An optimizer update queued on the device, not yet read."""
    pending: PendingStep
    iteration: int            # updates launched before it, skipped ones included
    reader_state: dict        # the reader's position after its micro-batches


class Trainer:
    """One process's (rank's) share of a pretraining run: `Trainer(cfg, ...).train()`.

    `__init__` builds the pieces (model, optimizer, schedule, train step, reader, metrics log)
    and, when resuming, restores them from the checkpoint; `train()` runs the updates. The
    attributes are what the loop's steps share: `counters` (saved in checkpoints), the reader
    position of the last update read, and the last metrics, checkpoint and validation loss
    (for the summary).
    """

    def __init__(self, cfg: PretrainConfig, *, checkpointer=None,
                 resume_from: str | os.PathLike | None = None,
                 on_metrics: MetricsFn | None = None, stop_after: int | None = None,
                 device: str | torch.device | None = None):
        self.t_start = time.perf_counter()
        self.cfg, self.on_metrics = cfg, on_metrics
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        self.res = res = resolve(cfg, self.world)
        self.device = pick_device(device if device is not None else cfg.device)
        self.amp_dtype = (torch.bfloat16 if (cfg.amp == "bf16" and self.device.type == "cuda")
                          else None)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.run_dir = cfg.run_dir
        self.checkpointer = checkpointer or ckpt.LocalCheckpointer(self.run_dir, cfg.keep_last)

        _seed_everything(cfg.seed, self.rank)
        self.model = build_model(res.model, device=self.device, seed=cfg.seed)
        resume_from, state = self._restore_weights(resume_from)
        self.started_from = self._initial_weights(state)
        self._build_train_step()
        self.reader = ShardReader(cfg.root, "train", batch_size=res.micro_batch_size,
                                  rank=self.rank, world_size=self.world, seed=cfg.seed,
                                  shuffle_window=cfg.shuffle_window)
        # Counters a checkpoint carries (besides the TrainStep's own).
        self.counters = {"iteration": 0, "tokens": 0, "elapsed_s": 0.0}
        history = self._restore_training_state(state) if state is not None else []
        self.log = MetricsLog(self.run_dir / METRICS_FILE, history, enabled=self.rank == 0)

        self.masker = Masker(res.masking, cfg.seed, res.model.pad_id)
        self.valid = validation_batches(cfg, res, self.rank, self.world)
        self.flops_per_token = res.model.flops_per_token(res.block_size, res.masking.mask_prob)
        self.peak_flops = peak_flops_for(self.device, cfg.peak_flops)
        self.target = res.steps if stop_after is None else min(res.steps, stop_after)
        self.poison = set(int(i) for i in cfg.nonfinite_at)
        self.data = iter(self.reader)
        self.config_dict = cfg.to_dict()
        self.tokenizer_dir = Path(cfg.root) / layout.TOKENIZER
        self.elapsed0 = self.counters["elapsed_s"]
        self.last_checkpoint: Path | None = Path(resume_from) if resume_from is not None else None
        self.last_valid_loss: float | None = None
        self.last_metrics: dict = {}
        self.consumed_reader_state = self.reader.state_dict()   # after the last update read

    def _restore_weights(self, resume_from) -> tuple[str | os.PathLike | None, dict | None]:
        """The checkpoint to resume from (None: a fresh start) and its state, weights loaded."""
        kw = dict(rank=self.rank, world_size=self.world, map_location=self.device)
        if resume_from == "latest":     # the newest checkpoint that verifies; none: start fresh
            return ckpt.restore_latest(self.run_dir, self.model, **kw) or (None, None)
        if resume_from is not None:
            return resume_from, ckpt.restore(resume_from, self.model, **kw)
        return None, None

    def _initial_weights(self, state: dict | None) -> dict | None:
        """Where the run's weights started ({"dir", "sha256"}; None: random initialisation),
        for checkpoint.json and the summary. A fresh run with `init_from` loads them here
        (optimizer, schedule and data position start fresh); a resumed run keeps the record of
        the checkpoint it resumes, whose weights are already loaded."""
        if state is not None:
            return state["manifest"].get(ckpt.INIT_FROM)
        if not self.cfg.init_from:
            return None
        return load_initial_weights(self.model, self.cfg.init_from)

    def _build_train_step(self) -> None:
        """The optimizer, LR schedule, DDP wrapper and TrainStep around the model (and the
        NaN injector of fault drills)."""
        cfg, res, dev = self.cfg, self.res, self.device
        self.injector = _NonFiniteInjector(self.model.embed) if cfg.nonfinite_at else None
        self.optimizer = build_optimizer(self.model, res.optim)
        self.scheduler = build_scheduler(self.optimizer, res.optim)
        self.wrapped = self.model
        if self.world > 1:
            self.wrapped = DistributedDataParallel(
                self.model, device_ids=[dev.index] if dev.type == "cuda" else None)
        self.train_step = TrainStep(self.wrapped, self.optimizer, self.scheduler,
                                    clip_grad_norm=res.optim.clip_grad_norm,
                                    max_consecutive_nonfinite=cfg.max_consecutive_nonfinite,
                                    amp_dtype=self.amp_dtype,
                                    compile=_compile_for(cfg.compile, dev, self.world))

    def _restore_training_state(self, state: dict) -> list[dict]:
        """Optimizer, schedule, counters, reader position and RNG from a checkpoint; returns
        the metrics history up to its step."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.train_step.load_state_dict(state["trainer"]["train_step"])
        self.reader.load_state_dict(state["reader"])
        self.counters.update({k: state["trainer"][k] for k in self.counters})
        history = [m for m in state["metrics"] if m.get("step", 0) <= self.train_step.steps]
        ckpt.set_rng_state(state["rng"])
        return history

    # ---------------------------------------------------------------- the loop

    def train(self) -> dict:
        """Run the updates up to the target; returns the run's summary."""
        # Launching k+1 before reading k pays only where launches are asynchronous (CUDA). On a
        # CPU launch() computes the whole update, so it would gain nothing and credit each
        # update's time to the one read before it (the update read at a checkpoint showed ~0 s).
        on_cuda = self.device.type == "cuda"
        pipelined = self.train_step.pipelined and (on_cuda if self.cfg.pipeline is None
                                                   else self.cfg.pipeline)
        self.host_group = _host_group()
        self.t_last_read = time.perf_counter()
        self.prefetch = Prefetcher(self.produce, depth=2, name="pretrain-batches")
        try:
            # Update k+1 is launched before update k is read, so the GPU never waits for the
            # host; at a boundary (checkpoint, validation, the end) k is read first.
            in_flight = None
            while True:
                next_step = self.train_step.steps + 1
                if in_flight is not None and (not pipelined or self.boundary(next_step)):
                    self.finish(in_flight)
                    in_flight = None
                if in_flight is None and self.train_step.steps >= self.target:
                    break
                launched = self.launch()
                if in_flight is not None:
                    self.finish(in_flight)
                in_flight = launched
        finally:
            self.prefetch.close()
            self.log.close()
            if self.host_group is not None:
                dist.destroy_process_group(self.host_group)
        return self.summary()

    def produce(self) -> tuple[list[dict], dict]:
        """The next update's masked micro-batches and the reader state after them (made in
        the prefetch thread, in the same order as inline, so runs stay deterministic)."""
        micro = []
        for _ in range(self.res.accumulation):
            b = next(self.data)
            mb = _masked_batch(b, self.masker, self.res, self.reader.position["epoch"])
            micro.append(pinned(mb) if self.device.type == "cuda" else mb)
        return micro, self.reader.state_dict()

    def boundary(self, step: int) -> bool:
        """Would update number `step` be validated or checkpointed, or end the run? Then it
        is read before the next one is launched, so the saved weights, reader position and
        counters all belong to it."""
        return step >= self.target or self._checkpoint_due(step) or self._validation_due(step)

    def _checkpoint_due(self, step: int) -> bool:
        return bool(self.cfg.checkpoint_every and step % self.cfg.checkpoint_every == 0)

    def _validation_due(self, step: int) -> bool:
        return bool(self.valid and self.cfg.valid_every and step % self.cfg.valid_every == 0)

    def launch(self) -> LaunchedUpdate:
        micro, reader_state = self.prefetch.get()
        it = self.counters["iteration"]
        if self.injector is not None:
            self.injector.armed = it in self.poison
        pending = self.train_step.launch(micro)
        self.counters["iteration"] = it + 1
        return LaunchedUpdate(pending, it, reader_state)

    def finish(self, launched: LaunchedUpdate) -> None:
        """Read a launched update: its metrics to the log and `on_metrics`, then validation
        and a checkpoint where they are due."""
        try:
            m = launched.pending.result()
        except NonFiniteLossError as exc:
            self.log.append({"step": self.train_step.steps, "iteration": launched.iteration,
                             "skipped": True, "skipped_total": self.train_step.skipped_total,
                             "error": str(exc)})
            raise
        self.consumed_reader_state = launched.reader_state
        metrics = self.last_metrics = self._update_metrics(m, launched)
        good = not m.skipped
        done = self.train_step.steps >= self.target
        if good and self.valid and (self._validation_due(m.step) or done):
            self.last_valid_loss = validate(self.wrapped, self.valid, self.device, self.amp_dtype)
            metrics["valid_loss"] = self.last_valid_loss
            metrics["valid_perplexity"] = _perplexity(self.last_valid_loss)
        for k, v in list(metrics.items()):      # JSON has no NaN/inf
            if isinstance(v, float) and not math.isfinite(v):
                metrics[k] = None
        self.log.append(metrics)
        if self.on_metrics is not None:
            self.on_metrics(metrics)
        if good and (self._checkpoint_due(m.step) or done):
            self.last_checkpoint = self.save_checkpoint(m.step, metrics)

    def _update_metrics(self, m: StepMetrics, launched: LaunchedUpdate) -> dict:
        """The metrics of a read update, summed over all ranks (identical on every rank)."""
        mlm_sum, masked, tokens = _global_sums(
            [m.mlm_loss * m.masked_tokens, float(m.masked_tokens), float(m.tokens)],
            self.host_group)
        mlm_loss = mlm_sum / max(masked, 1.0)
        # Steady-state time per update: between the completions of consecutive updates (with
        # pipelining the host is already a step ahead, so launch-to-read would overlap).
        now = time.perf_counter()
        dt, self.t_last_read = now - self.t_last_read, now
        self.counters["tokens"] += int(tokens)
        tps = tokens / dt if dt > 0 else 0.0
        return {"step": m.step, "iteration": launched.iteration,
                "epoch": launched.reader_state["epoch"],
                "loss": mlm_loss + (m.nsp_loss or 0.0), "mlm_loss": mlm_loss,
                "nsp_loss": m.nsp_loss, "perplexity": _perplexity(mlm_loss),
                "lr": m.lr, "grad_norm": m.grad_norm, "tokens": int(tokens),
                "tokens_total": self.counters["tokens"], "tokens_per_s": tps,
                "mfu": ((tps * self.flops_per_token / (self.peak_flops * self.world))
                        if self.peak_flops else None),
                "step_time_s": dt, "skipped": m.skipped,
                "skipped_total": self.train_step.skipped_total,
                "consecutive_nonfinite": m.consecutive_nonfinite,
                "elapsed_s": self.elapsed0 + now - self.t_start}

    def save_checkpoint(self, step: int, metrics: dict) -> Path | None:
        trainer_state = {"step": step, "train_step": self.train_step.state_dict(), **self.counters,
                         "elapsed_s": self.elapsed0 + time.perf_counter() - self.t_start}

        def write(d: Path) -> None:
            ckpt.write_checkpoint(d, rank=self.rank, world_size=self.world, model=self.model,
                                  optimizer=self.optimizer, scheduler=self.scheduler,
                                  trainer_state=trainer_state,
                                  reader_state=self.consumed_reader_state,
                                  config=self.config_dict, metrics=self.log.history,
                                  tokenizer_dir=self.tokenizer_dir, init_from=self.started_from)
        return self.checkpointer.save(step, write, metrics)

    def summary(self) -> dict:
        steps, res = self.train_step.steps, self.res
        return {"run_dir": str(self.run_dir), "steps": steps, "target_steps": res.steps,
                "finished": steps >= res.steps,
                "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
                "loss": self.last_metrics.get("loss"), "valid_loss": self.last_valid_loss,
                "skipped_total": self.train_step.skipped_total,
                "tokens_total": self.counters["tokens"],
                "elapsed_s": self.elapsed0 + time.perf_counter() - self.t_start,
                "world_size": self.world, "accumulation": res.accumulation,
                "batch_size": res.batch_size, "micro_batch_size": res.micro_batch_size,
                "device": str(self.device), "params": self.model.num_params(),
                "init_from": self.started_from}


def train(cfg: PretrainConfig, *, checkpointer=None, resume_from: str | os.PathLike | None = None,
          on_metrics: MetricsFn | None = None, stop_after: int | None = None,
          device: str | torch.device | None = None) -> dict:
    """Run (or continue) pretraining; returns a summary dict.

    checkpointer: where checkpoints go (default: `LocalCheckpointer(<run_dir>, keep_last)`);
        Ray Train passes one that reports through `ray.train.report`.
    resume_from: a checkpoint directory, or "latest" for the newest one of the run that
        verifies (a damaged newer one is skipped with a warning; none at all: start fresh).
    on_metrics: called on every rank with each update's metrics (identical on all ranks).
    stop_after: stop once this many updates are done, as if interrupted (the LR schedule
        still spans `steps`); a checkpoint is written there.
    device: overrides cfg.device (Ray Train passes the worker's device).
    """
    return Trainer(cfg, checkpointer=checkpointer, resume_from=resume_from,
                   on_metrics=on_metrics, stop_after=stop_after, device=device).train()


__all__ = ["train", "Trainer", "validate", "validation_batches", "pick_device"]
