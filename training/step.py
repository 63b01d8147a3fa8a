"""The training step shared by `pretrain` and the benchmarks.

One call = one optimizer update over a list of micro-batches (gradient accumulation), so the
effective batch is independent of workers x micro-batch size:

  - forward/backward per micro-batch under bf16 autocast on CUDA (float32 on CPU);
  - DDP: `no_sync()` on all but the last micro-batch, so gradients are all-reduced once;
  - the loss is normalised by the number of masked tokens of the whole update (all
    micro-batches, and all DDP ranks: one scalar all-reduce of counts known on the host), so
    8 sequences at once and 4 x 2 give the same update; NSP loss likewise per sequence;
  - optional gradient clipping; the grad norm is always computed and reported;
  - a non-finite loss or grad norm (on any rank) skips the update (grads dropped, schedule not
    advanced) and is counted; after `max_consecutive_nonfinite` in a row, `NonFiniteLossError`
    is raised. Pipelined (`launch` before the previous `result`), the one update already
    launched after a skipped one has used the next LR: the skip is only seen a step late.
    With fused AdamW the skip is decided on the device (`found_inf`), so the update is queued
    before the step's single host sync instead of after it (`device_skip=False`: the old order).

Batch dicts are those produced by `training.masking` (numpy or torch; see that module).
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

TENSOR_KEYS = ("input_ids", "mlm_positions", "mlm_targets", "attention_mask", "nsp_labels")


# `compile=` presets (TrainStep, `pretrain --compile`). "cudagraphs" is the fastest measured on
# an H200 (bench/RESULTS.md, run 4): CUDA graphs (mode "reduce-overhead") plus ATen's dropout
# RNG instead of inductor's per-element Triton Philox (+2% there).
COMPILE_PRESETS: dict[str, dict] = {
    "default": {},
    "cudagraphs": {"options": {"triton.cudagraphs": True, "fallback_random": True}},
}


def compile_kwargs(spec: bool | str | dict | None) -> dict | None:
    """torch.compile keyword arguments for a `compile=` value; None: do not compile."""
    if spec is None or spec is False or spec == "off":
        return None
    if spec is True:
        return {}
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if spec not in COMPILE_PRESETS:
        raise ValueError(f"compile={spec!r}: choose off, {', '.join(COMPILE_PRESETS)} or a dict "
                         f"of torch.compile arguments")
    return copy.deepcopy(COMPILE_PRESETS[spec])


def uses_cudagraphs(kw: dict | None) -> bool:
    return bool(kw is not None and (kw.get("mode") in ("reduce-overhead", "max-autotune")
                                    or kw.get("options", {}).get("triton.cudagraphs")))


class NonFiniteLossError(FloatingPointError):
    """Raised after too many consecutive optimizer steps with a NaN/inf loss or gradient."""


@dataclass
class StepMetrics:
    loss: float                 # MLM cross-entropy per masked token, nats (+ NSP per sequence)
    mlm_loss: float
    nsp_loss: float | None
    grad_norm: float            # before clipping
    lr: float                   # learning rate used by this update
    tokens: int                 # non-pad tokens processed (this rank)
    masked_tokens: int          # MLM targets (this rank)
    micro_batches: int
    skipped: bool               # True when the update was skipped for a non-finite value
    consecutive_nonfinite: int
    step: int                   # optimizer updates applied so far (after this one)

    def as_dict(self) -> dict:
        return asdict(self)


def batch_to_device(batch: dict, device: torch.device | str, non_blocking: bool = True) -> dict:
    """A copy of `batch` whose fields named in TENSOR_KEYS (numpy arrays or tensors) are
    tensors on `device`; other fields (counts, None) are passed through unchanged. From the CPU
    to CUDA the copy goes through pinned memory, `non_blocking`, so the host does not wait for
    the GPU queue. Used by the train step and by finetuning (evaluation/)."""
    device = torch.device(device)
    out = {}
    for k, v in batch.items():
        if k in TENSOR_KEYS and v is not None:
            t = torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            if device.type == "cuda" and t.device.type == "cpu":
                t = t.pin_memory().to(device, non_blocking=non_blocking)
            else:
                t = t.to(device)
            out[k] = t
        else:
            out[k] = v
    return out


def autocast_for(device: torch.device | str, amp_dtype: torch.dtype | None = torch.bfloat16):
    """The mixed-precision context for a forward pass on `device`: autocast to `amp_dtype`
    (bf16 by default) on CUDA; on a CPU, or with amp_dtype None, a no-op (float32). Used by
    the train step and by finetuning (evaluation/)."""
    device = torch.device(device)
    if device.type == "cuda" and amp_dtype is not None:
        return torch.autocast("cuda", dtype=amp_dtype)
    return contextlib.nullcontext()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class TrainStep:
    """Callable: `metrics = step(list_of_micro_batches)`.

    model: our `Roberta`, optionally wrapped in DDP. compile: False/"off", True/"default",
    "cudagraphs" (COMPILE_PRESETS), or a dict of `torch.compile` keyword arguments; the
    compiled forward includes the masked gather and the loss. The original module (and its
    state_dict keys) is left untouched.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler=None, *, clip_grad_norm: float = 0.0,
                 max_consecutive_nonfinite: int | None = None,
                 amp_dtype: torch.dtype | None = torch.bfloat16,
                 compile: bool | str | dict = False, device_skip: bool = True):
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.clip_grad_norm = clip_grad_norm
        self.max_consecutive_nonfinite = max_consecutive_nonfinite
        self.amp_dtype = amp_dtype
        self.device_skip = device_skip
        self.device = next(model.parameters()).device
        self.is_ddp = isinstance(model, DistributedDataParallel)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.forward = model
        compile_kw = compile_kwargs(compile)
        if compile_kw is not None:
            self.forward = torch.compile(model, **compile_kw)
        # CUDA-graph modes: tell the cudagraph trees where an iteration starts, so outputs of
        # the previous replay are not considered live.
        self._mark_cudagraph_step = uses_cudagraphs(compile_kw)
        self._pending: PendingStep | None = None   # launched, not yet read
        # counters (part of the checkpoint: see state_dict)
        self.steps = 0
        self.skipped_total = 0
        self.consecutive_nonfinite = 0

    # ---- checkpoint state ----
    def state_dict(self) -> dict:
        return {"steps": self.steps, "skipped_total": self.skipped_total,
                "consecutive_nonfinite": self.consecutive_nonfinite}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.skipped_total = int(state["skipped_total"])
        self.consecutive_nonfinite = int(state["consecutive_nonfinite"])

    # ---- the step ----
    @property
    def pipelined(self) -> bool:
        """Can launch() be called again before the previous step's result() is read?"""
        return self._device_skip()

    def _device_skip(self) -> bool:
        """Can the non-finite check run on the device? Only torch's fused Adam/AdamW take a
        `found_inf` tensor; other optimizers step after the host has checked the loss."""
        return (self.device_skip and isinstance(self.optimizer, (torch.optim.Adam, torch.optim.AdamW))
                and bool(self.optimizer.defaults.get("fused")))

    def _ddp_running(self) -> bool:
        return self.is_ddp and dist.is_available() and dist.is_initialized()

    def _global_counts(self, masked: int, sequences: int):
        """Masked tokens and NSP sequences of the whole update (all ranks), for the loss scale.
        Under DDP these stay device tensors: reading them would be a host sync per step."""
        if self._ddp_running():
            t = torch.tensor([masked, sequences], dtype=torch.float32)
            # from pinned memory, non-blocking: a pageable copy would wait for the GPU queue
            t = t.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else t
            dist.all_reduce(t)
            return t[0].clamp_min(1.0), t[1].clamp_min(1.0), dist.get_world_size()
        return max(float(masked), 1.0), max(float(sequences), 1.0), 1

    def __call__(self, micro_batches: list[dict]) -> StepMetrics:
        """One update, synchronously: launch it and wait for its metrics."""
        return self.launch(micro_batches).result()

    def launch(self, micro_batches: list[dict]) -> "PendingStep":
        """Queue one update on the device and return without waiting for it.

        With fused AdamW (device-side skip) the next update can be launched before this one's
        `result()` is read, so the host prepares step k+1 while the GPU runs step k and the
        GPU never idles on Python. Otherwise an unread previous step is resolved first (its
        update has to be applied before new gradients are made).
        """
        if not micro_batches:
            raise ValueError("TrainStep needs at least one micro-batch")
        if self._pending is not None and not self._pending.device_skip:
            self._pending.result()
        batches = [batch_to_device(mb, self.device) for mb in micro_batches]
        masked = sum(int(mb["num_masked"]) for mb in batches)
        tokens = sum(int(mb["num_tokens"]) for mb in batches)
        nsp_seqs = sum(int(mb["nsp_labels"].shape[0]) for mb in batches
                       if mb.get("nsp_labels") is not None)
        mlm_sum, nsp_sum = self._forward_backward(batches, masked, nsp_seqs)
        stats, bad = self._update_stats(mlm_sum, nsp_sum)
        lr = float(self.optimizer.param_groups[0]["lr"])    # before the schedule advances
        device_skip = self._device_skip()
        if device_skip:
            self._step_on_device(bad)
        stats_host, done = _copy_to_host(stats)
        self._pending = PendingStep(self, stats_host, done, lr=lr, tokens=tokens, masked=masked,
                                    nsp_seqs=nsp_seqs, micro_batches=len(batches),
                                    device_skip=device_skip)
        return self._pending

    def _forward_backward(self, batches: list[dict], masked: int, nsp_seqs: int):
        """Forward and backward of every micro-batch, gradients accumulated (under DDP
        all-reduced with the last one only). Returns the summed MLM and NSP losses of the
        update, as device scalars (reading them would be a host sync)."""
        g_masked, g_nsp, world = self._global_counts(masked, nsp_seqs)
        # DDP averages gradients over ranks; multiplying by `world` turns that into a sum, so
        # the result is the per-masked-token mean over the whole global update.
        mlm_scale = world / g_masked
        nsp_scale = world / g_nsp

        self.model.train()
        mlm_sum = torch.zeros((), device=self.device)
        nsp_sum = torch.zeros((), device=self.device)
        last = len(batches) - 1
        for i, mb in enumerate(batches):
            sync_ctx = self.model.no_sync() if (self.is_ddp and i < last) else contextlib.nullcontext()
            # Only at the first micro-batch: .grad may alias graph outputs of earlier ones.
            if (i == 0 and self._mark_cudagraph_step
                    and hasattr(torch.compiler, "cudagraph_mark_step_begin")):
                torch.compiler.cudagraph_mark_step_begin()
            with sync_ctx:
                with autocast_for(self.device, self.amp_dtype):
                    out = self.forward(input_ids=mb["input_ids"], mlm_positions=mb["mlm_positions"],
                                       mlm_targets=mb["mlm_targets"],
                                       attention_mask=mb.get("attention_mask"),
                                       nsp_labels=mb.get("nsp_labels"))
                loss = out["mlm_loss_sum"] * mlm_scale
                mlm_sum = mlm_sum + out["mlm_loss_sum"].detach().float()
                if "nsp_loss_sum" in out:
                    loss = loss + out["nsp_loss_sum"] * nsp_scale
                    nsp_sum = nsp_sum + out["nsp_loss_sum"].detach().float()
                loss.backward()
        return mlm_sum, nsp_sum

    def _grad_norm(self) -> torch.Tensor:
        """The gradients' total norm before clipping (clipping them when configured)."""
        if self.clip_grad_norm and self.clip_grad_norm > 0:
            return torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad_norm, foreach=True)
        grads = [p.grad for p in self.params if p.grad is not None]
        return (torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                if grads else torch.zeros((), device=self.device))

    def _update_stats(self, mlm_sum: torch.Tensor, nsp_sum: torch.Tensor):
        """[mlm loss sum, nsp loss sum, grad norm, skip flag] on the device, and the skip flag
        alone: 1.0 if this update must be skipped for a non-finite value."""
        stats = torch.stack([mlm_sum, nsp_sum, self._grad_norm().float()])
        # Under DDP any rank's non-finite loss skips the update on every rank: ranks that
        # disagreed would drift apart (and then hang in different collectives at the next
        # validation).
        bad = (~torch.isfinite(stats).all()).float()
        if self._ddp_running():
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return torch.cat([stats, bad[None]]), bad

    def _step_on_device(self, bad: torch.Tensor) -> None:
        """Apply the update without waiting for the host to see the loss. The fused AdamW
        kernel reads `found_inf` on the device and leaves parameters, moments and step counts
        untouched when it is 1 (as under GradScaler)."""
        self.optimizer.found_inf = bad
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # Assume the update is good and advance the schedule now, so a step launched before
        # this one is read gets the next LR; result() takes it back if the update was skipped.
        if self.scheduler is not None:
            self.scheduler.step()

    def drain(self) -> StepMetrics | None:
        """Read the last launched update, if unread (before a checkpoint, validation, exit)."""
        return self._pending.result() if self._pending is not None else None

    def _finish(self, p: "PendingStep") -> StepMetrics:
        """Host bookkeeping of a launched update, in launch order (called by PendingStep)."""
        if p.done is not None:
            p.done.synchronize()          # the one host sync of the step
        mlm_total, nsp_total, gn, bad = p.stats.tolist()
        mlm_loss = mlm_total / max(p.masked, 1)
        nsp_loss = nsp_total / p.nsp_seqs if p.nsp_seqs else None
        finite = bad == 0.0
        if finite:
            if not p.device_skip:
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
            self.steps += 1
            self.consecutive_nonfinite = 0
        else:
            if p.device_skip and self.scheduler is not None:
                _rewind(self.scheduler)
            self.skipped_total += 1
            self.consecutive_nonfinite += 1
        if not p.device_skip:
            self.optimizer.zero_grad(set_to_none=True)
        if self._pending is p:
            self._pending = None
        metrics = StepMetrics(loss=mlm_loss + (nsp_loss or 0.0), mlm_loss=mlm_loss,
                              nsp_loss=nsp_loss, grad_norm=gn, lr=p.lr, tokens=p.tokens,
                              masked_tokens=p.masked, micro_batches=p.micro_batches,
                              skipped=not finite,
                              consecutive_nonfinite=self.consecutive_nonfinite, step=self.steps)
        if (not finite and self.max_consecutive_nonfinite is not None
                and self.consecutive_nonfinite >= self.max_consecutive_nonfinite):
            raise NonFiniteLossError(
                f"{self.consecutive_nonfinite} consecutive steps with a non-finite loss or "
                f"gradient (last: mlm loss {mlm_loss}, grad norm {gn}) after {self.steps} "
                f"good updates; stopping. Lower the LR / raise warm-up, or resume from the last "
                f"good checkpoint with another seed.")
        return metrics


def _copy_to_host(stats: torch.Tensor):
    """Start copying a step's stats to the host; (host tensor, CUDA event recorded after the
    copy, or None on a CPU, where the tensor already is the host copy)."""
    if stats.device.type != "cuda":
        return stats, None
    stats_host = stats.to("cpu", non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return stats_host, done


def _rewind(scheduler) -> None:
    """Undo one scheduler.step() of a LambdaLR-style scheduler (LR = f(last_epoch))."""
    scheduler.last_epoch -= 1
    lrs = [base * lmbda(scheduler.last_epoch)
           for base, lmbda in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


class PendingStep:
    """A launched update; `result()` waits for it (once) and returns its StepMetrics.

    Steps must be read in launch order: reading one first reads any earlier unread one."""

    def __init__(self, owner: TrainStep, stats, done, **info):
        self.owner, self.stats, self.done = owner, stats, done
        self.lr, self.tokens, self.masked = info["lr"], info["tokens"], info["masked"]
        self.nsp_seqs, self.micro_batches = info["nsp_seqs"], info["micro_batches"]
        self.device_skip = info["device_skip"]
        self.previous = owner._pending
        self._metrics: StepMetrics | None = None
        self._error: BaseException | None = None

    def result(self) -> StepMetrics:
        if self._metrics is None and self._error is None:
            if self.previous is not None:
                prev, self.previous = self.previous, None
                prev.result()
            try:
                self._metrics = self.owner._finish(self)
            except NonFiniteLossError as e:
                self._error = e
        if self._error is not None:
            raise self._error
        return self._metrics


@torch.no_grad()
def eval_step(model: torch.nn.Module, batch: dict,
              amp_dtype: torch.dtype | None = torch.bfloat16) -> tuple[float, int]:
    """Summed MLM cross-entropy (nats) and the number of masked tokens, dropout off."""
    inner = _unwrap(model)
    device = next(inner.parameters()).device
    b = batch_to_device(batch, device)
    was_training = inner.training
    inner.eval()
    try:
        with autocast_for(device, amp_dtype):
            out = inner(input_ids=b["input_ids"], mlm_positions=b["mlm_positions"],
                        mlm_targets=b["mlm_targets"], attention_mask=b.get("attention_mask"))
    finally:
        inner.train(was_training)
    return float(out["mlm_loss_sum"]), int(b["num_masked"])


__all__ = ["TrainStep", "PendingStep", "StepMetrics", "COMPILE_PRESETS", "compile_kwargs",
           "NonFiniteLossError", "batch_to_device", "autocast_for", "eval_step", "TENSOR_KEYS"]
