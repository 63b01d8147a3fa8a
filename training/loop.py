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
"""
from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from training import checkpoint as ckpt
from training.masking import Masker, batch_from_static_labels
from training.model import build_model
from training.optim import build_optimizer, build_scheduler
from training.metrics_log import METRICS_FILE, MetricsLog
from training.prefetch import Prefetcher, pinned
from training.pretrain_config import PretrainConfig, Resolved, resolve
from training.shard_reader import ShardReader
from training.step import NonFiniteLossError, TrainStep, eval_step

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
    t_start = time.perf_counter()
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    res = resolve(cfg, world)
    dev = pick_device(device if device is not None else cfg.device)
    amp_dtype = torch.bfloat16 if (cfg.amp == "bf16" and dev.type == "cuda") else None
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    rdir = cfg.run_dir
    checkpointer = checkpointer or ckpt.LocalCheckpointer(rdir, cfg.keep_last)

    _seed_everything(cfg.seed, rank)
    model = build_model(res.model, device=dev, seed=cfg.seed)
    state = None
    if resume_from == "latest":     # the newest checkpoint that verifies; none: start fresh
        resume_from, state = ckpt.restore_latest(rdir, model, rank=rank, world_size=world,
                                                 map_location=dev) or (None, None)
    elif resume_from is not None:
        state = ckpt.restore(resume_from, model, rank=rank, world_size=world, map_location=dev)
    injector = _NonFiniteInjector(model.embed) if cfg.nonfinite_at else None
    optimizer = build_optimizer(model, res.optim)
    scheduler = build_scheduler(optimizer, res.optim)
    wrapped = model
    if world > 1:
        wrapped = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda"
                                          else None)
    step_fn = TrainStep(wrapped, optimizer, scheduler, clip_grad_norm=res.optim.clip_grad_norm,
                        max_consecutive_nonfinite=cfg.max_consecutive_nonfinite,
                        amp_dtype=amp_dtype, compile=_compile_for(cfg.compile, dev, world))
    reader = ShardReader(cfg.root, "train", batch_size=res.micro_batch_size, rank=rank,
                         world_size=world, seed=cfg.seed, shuffle_window=cfg.shuffle_window)
    loop_state = {"iteration": 0, "tokens": 0, "elapsed_s": 0.0}
    history: list[dict] = []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step_fn.load_state_dict(state["trainer"]["train_step"])
        reader.load_state_dict(state["reader"])
        loop_state.update({k: state["trainer"][k] for k in loop_state})
        history = [m for m in state["metrics"] if m.get("step", 0) <= step_fn.steps]
        ckpt.set_rng_state(state["rng"])
    log = MetricsLog(rdir / METRICS_FILE, history, enabled=rank == 0)

    masker = Masker(res.masking, cfg.seed, res.model.pad_id)
    valid = validation_batches(cfg, res, rank, world)
    fpt = res.model.flops_per_token(res.block_size, res.masking.mask_prob)
    peak = peak_flops_for(dev, cfg.peak_flops)
    target = res.steps if stop_after is None else min(res.steps, stop_after)
    poison = set(int(i) for i in cfg.nonfinite_at)
    data = iter(reader)
    config_dict = cfg.to_dict()
    tokenizer_dir = Path(cfg.root) / "tokenizer"
    last_ckpt: Path | None = Path(resume_from) if resume_from is not None else None
    last_valid: float | None = None
    elapsed0 = loop_state["elapsed_s"]

    consumed = {"reader": reader.state_dict()}   # reader position of the last update read

    def save_checkpoint(step: int, metrics: dict) -> Path | None:
        trainer_state = {"step": step, "train_step": step_fn.state_dict(), **loop_state,
                         "elapsed_s": elapsed0 + time.perf_counter() - t_start}

        def write(d: Path) -> None:
            ckpt.write_checkpoint(d, rank=rank, world_size=world, model=model,
                                  optimizer=optimizer, scheduler=scheduler,
                                  trainer_state=trainer_state, reader_state=consumed["reader"],
                                  config=config_dict, metrics=log.history,
                                  tokenizer_dir=tokenizer_dir)
        return checkpointer.save(step, write, metrics)

    def produce() -> tuple[list[dict], dict]:
        """The next update's masked micro-batches and the reader state after them (made in
        the prefetch thread, in the same order as inline, so runs stay deterministic)."""
        micro = []
        for _ in range(res.accumulation):
            b = next(data)
            mb = _masked_batch(b, masker, res, reader.position["epoch"])
            micro.append(pinned(mb) if dev.type == "cuda" else mb)
        return micro, reader.state_dict()

    def boundary(step: int) -> bool:
        """Would update number `step` be validated or checkpointed, or end the run? Then it
        is read before the next one is launched, so the saved weights, reader position and
        counters all belong to it."""
        return (step >= target or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
                or bool(valid and cfg.valid_every and step % cfg.valid_every == 0))

    def launch() -> dict:
        micro, reader_state = prefetch.get()
        it = loop_state["iteration"]
        if injector is not None:
            injector.armed = it in poison
        pending = step_fn.launch(micro)
        loop_state["iteration"] = it + 1
        return {"step": pending, "iteration": it, "reader_state": reader_state}

    def finish(launched: dict) -> None:
        nonlocal last_ckpt, last_valid, metrics, t_last
        it = launched["iteration"]
        try:
            m = launched["step"].result()
        except NonFiniteLossError as exc:
            log.append({"step": step_fn.steps, "iteration": it, "skipped": True,
                        "skipped_total": step_fn.skipped_total, "error": str(exc)})
            raise
        consumed["reader"] = launched["reader_state"]
        mlm_sum, masked, tokens = _global_sums(
            [m.mlm_loss * m.masked_tokens, float(m.masked_tokens), float(m.tokens)], host_group)
        loss = mlm_sum / max(masked, 1.0) + (m.nsp_loss or 0.0)
        # Steady-state time per update: between the completions of consecutive updates (with
        # pipelining the host is already a step ahead, so launch-to-read would overlap).
        now = time.perf_counter()
        dt, t_last = now - t_last, now
        loop_state["tokens"] += int(tokens)
        tps = tokens / dt if dt > 0 else 0.0
        metrics = {"step": m.step, "iteration": it, "epoch": launched["reader_state"]["epoch"],
                   "loss": loss, "mlm_loss": mlm_sum / max(masked, 1.0),
                   "nsp_loss": m.nsp_loss, "perplexity": _perplexity(mlm_sum / max(masked, 1.0)),
                   "lr": m.lr, "grad_norm": m.grad_norm, "tokens": int(tokens),
                   "tokens_total": loop_state["tokens"], "tokens_per_s": tps,
                   "mfu": (tps * fpt / (peak * world)) if peak else None,
                   "step_time_s": dt, "skipped": m.skipped, "skipped_total": step_fn.skipped_total,
                   "consecutive_nonfinite": m.consecutive_nonfinite,
                   "elapsed_s": elapsed0 + now - t_start}
        good = not m.skipped
        done = step_fn.steps >= target
        if good and valid and ((cfg.valid_every and m.step % cfg.valid_every == 0) or done):
            last_valid = validate(wrapped, valid, dev, amp_dtype)
            metrics["valid_loss"] = last_valid
            metrics["valid_perplexity"] = _perplexity(last_valid)
        for k, v in list(metrics.items()):      # JSON has no NaN/inf
            if isinstance(v, float) and not math.isfinite(v):
                metrics[k] = None
        log.append(metrics)
        if on_metrics is not None:
            on_metrics(metrics)
        if good and ((cfg.checkpoint_every and m.step % cfg.checkpoint_every == 0) or done):
            last_ckpt = save_checkpoint(m.step, metrics)

    # Launching k+1 before reading k pays only where launches are asynchronous (CUDA). On a
    # CPU launch() computes the whole update, so it would gain nothing and credit each
    # update's time to the one read before it (the update read at a checkpoint showed ~0 s).
    pipelined = step_fn.pipelined and (dev.type == "cuda" if cfg.pipeline is None
                                       else cfg.pipeline)
    metrics: dict = {}
    host_group = _host_group()
    t_last = time.perf_counter()
    prefetch = Prefetcher(produce, depth=2, name="pretrain-batches")
    try:
        # Update k+1 is launched before update k is read, so the GPU never waits for the
        # host; at a boundary (checkpoint, validation, the end) k is read first.
        in_flight = None
        while True:
            if in_flight is not None and (not pipelined or boundary(step_fn.steps + 1)):
                finish(in_flight)
                in_flight = None
            if in_flight is None and step_fn.steps >= target:
                break
            launched = launch()
            if in_flight is not None:
                finish(in_flight)
            in_flight = launched
    finally:
        prefetch.close()
        log.close()
        if host_group is not None:
            dist.destroy_process_group(host_group)
    return {"run_dir": str(rdir), "steps": step_fn.steps, "target_steps": res.steps,
            "finished": step_fn.steps >= res.steps, "checkpoint": str(last_ckpt) if last_ckpt else None,
            "loss": metrics.get("loss"), "valid_loss": last_valid,
            "skipped_total": step_fn.skipped_total, "tokens_total": loop_state["tokens"],
            "elapsed_s": elapsed0 + time.perf_counter() - t_start,
            "world_size": world, "accumulation": res.accumulation, "batch_size": res.batch_size,
            "micro_batch_size": res.micro_batch_size, "device": str(dev),
            "params": model.num_params()}


__all__ = ["train", "validate", "validation_batches", "pick_device"]
