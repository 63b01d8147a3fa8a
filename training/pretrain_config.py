"""A pretraining run's configuration, and its check against the shards and itself.

`PretrainConfig` is what a user chooses: model/optimizer/masking presets plus overrides, sizes,
intervals. `resolve()` makes it concrete against the shards' manifest (vocabulary, special ids,
block size, format) and the worker count, raising `PretrainConfigError` naming the field when
something does not fit. The CLI calls it before anything starts, the flow again for runs that
come from a deployment, and each worker at start-up.

Continued pretraining (`init_from`, an HF RoBERTa checkpoint directory): the model's shape
comes from the checkpoint's config.json, checked against its weights (training/hf_config.py)
and against a model preset if one is named; the optimizer defaults to the domain-adaptive
pretraining recipe below instead of a from-scratch preset.

Imports no torch (only the shards manifest reader: numpy and pyarrow, and the checkpoint
reader, which needs torch only for a `pytorch_model.bin`), so the CLI's pre-check and the Ray
driver stay light.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from runroot import layout, shard_format, storage
from training.config import MaskingConfig, ModelConfig, OptimConfig, field_names
from training.hf_config import HFCheckpointError, check_checkpoint
from training.shard_reader import load_manifest


DEFAULT_INTERVAL = 1000    # updates between checkpoints and validations of a long run

# Continued pretraining from a checkpoint (`init_from`), unless an optimizer preset is named:
# DAPT, Gururangan et al. 2020, "Don't Stop Pretraining", Section 3.2, Appendix B and Table 13:
# 12.5K updates of 2,048 sequences, Adam beta (0.9, 0.98), eps 1e-6, weight decay 0.01, linear
# warm-up over 6% of the updates then linear decay, peak LR 5e-4; the paper's runs with
# batches of 256 used 1e-4 (Appendix B, "as recommended in Liu et al. (2019)"), so any batch
# smaller than DAPT's gets that lower peak. Fresh optimizer state and schedule, like
# transformers' run_mlm.py --model_name_or_path and fairseq's --reset-optimizer.
CONTINUED_RECIPE = dict(total_steps=12_500, batch_size=2048, peak_lr=5e-4, warmup_steps=750,
                        betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01, end_lr=0.0)
CONTINUED_WARMUP_FRACTION = 0.06
CONTINUED_SMALL_BATCH_LR = 1e-4          # batches below CONTINUED_RECIPE["batch_size"]
# ModelConfig fields a checkpoint fixes: an override must agree with it.
CHECKPOINT_FIELDS = ("num_layers", "hidden_size", "num_heads", "ffn_size", "vocab_size",
                     "max_positions", "type_vocab_size", "pad_id", "bos_id", "eos_id")
PRESET_SHAPE = ("num_layers", "hidden_size", "num_heads", "ffn_size")


class PretrainConfigError(ValueError):
    """The run's configuration does not fit the shards or itself (named field, reason)."""


@dataclass
class PretrainConfig:
    """One pretraining run. Model/optimizer/masking come from named presets plus overrides;
    vocabulary, special ids, block size and format come from the shards' manifest."""

    root: str                                   # run root: <root>/shards, <root>/tokenizer
    run: str = "default"                        # outputs under <root>/pretrain/<run>/
    model: str | None = "tiny"                  # ModelConfig preset: tiny|small|base|large
                                                # (None with init_from: the checkpoint's shape)
    init_from: str | None = None                # HF RoBERTa checkpoint directory whose weights
                                                # start the run (optimizer, schedule, data fresh)
    model_overrides: dict = field(default_factory=dict)
    optim: str | None = None                    # OptimConfig preset (None: same as model)
    optim_overrides: dict = field(default_factory=dict)
    masking: str = "dynamic"                    # dynamic | static (masks stored in the shards)
    masking_overrides: dict = field(default_factory=dict)
    nsp: bool | None = None                     # NSP loss (None: on for the pair formats)
    batch_size: int | None = None               # sequences per optimizer update (None: preset)
    micro_batch_size: int | None = None         # sequences per forward/backward on one worker
                                                # (None: gcd(batch per worker, 16))
    steps: int | None = None                    # optimizer updates = schedule length (None: preset)
    seed: int = 0
    checkpoint_every: int = 1000                # updates between checkpoints (0: only the last)
    keep_last: int = 3                          # checkpoints kept
    valid_every: int = 1000                     # updates between validations (0: only the last)
    valid_batches: int = 16                     # micro-batches per rank per validation (0: all)
    max_consecutive_nonfinite: int = 5          # stop after this many skipped updates in a row
    compile: bool | str = "auto"                # off | default | cudagraphs | auto (cudagraphs
                                                # on one GPU, default on several, off on CPU)
    pipeline: bool | None = None                # launch update k+1 before reading k (None: on
                                                # CUDA, with fused AdamW)
    device: str = "auto"                        # auto | cpu | cuda | cuda:N
    amp: str = "bf16"                           # bf16 | fp32 (autocast applies on CUDA only)
    peak_flops: float | None = None             # per device, for MFU (None: known GPUs only)
    shuffle_window: int = 8192                  # blocks shuffled together by the reader
    nonfinite_at: tuple[int, ...] = ()          # fault injection: these iterations' loss is NaN

    def __post_init__(self):
        if self.init_from:        # Ray workers may run in another directory
            self.init_from = str(Path(self.init_from).resolve())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["nonfinite_at"] = list(self.nonfinite_at)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        bad = sorted(set(d) - field_names(cls))
        if bad:
            raise PretrainConfigError(f"unknown PretrainConfig field(s) {bad}")
        d = dict(d)
        if "nonfinite_at" in d:
            d["nonfinite_at"] = tuple(d["nonfinite_at"])
        return cls(**d)

    def replace(self, **kw) -> "PretrainConfig":
        return dataclasses.replace(self, **kw)

    @classmethod
    def for_run(cls, root, model: str | None = "tiny", *, run: str | None = None,
                checkpoint_every: int | None = None, valid_every: int | None = None,
                **fields) -> "PretrainConfig":
        """The run a user means by these choices (the CLI's and the flows' defaults): named
        after the model preset (or `from-<checkpoint dir>` with init_from), with checkpoints
        and validations every 1000 updates, or a tenth of a short run. model None: `tiny`,
        or with init_from the checkpoint's own shape."""
        init_from = fields.get("init_from")
        if model is None and not init_from:
            model = "tiny"
        default_run = f"from-{Path(init_from).resolve().name}" if init_from else model
        cfg = cls(root=str(root), model=model, run=run or default_run, **fields)
        total = cfg.steps if cfg.steps is not None else cfg.optim_config().total_steps
        every = min(DEFAULT_INTERVAL, max(1, total // 10))
        return cfg.replace(
            checkpoint_every=every if checkpoint_every is None else checkpoint_every,
            valid_every=every if valid_every is None else valid_every)

    def optim_config(self) -> OptimConfig:
        """The optimizer preset with the overrides, before the run's sizes: the named preset
        (default: the model's), or with init_from the continued-pretraining recipe."""
        if self.init_from and self.optim is None:
            # "base" only for its field checks: the recipe sets every field a preset does
            return OptimConfig.named("base", **{**CONTINUED_RECIPE, **self.optim_overrides})
        return OptimConfig.named(self.optim or self.model, **self.optim_overrides)

    @property
    def model_label(self) -> str:
        """The model, in a log line or a plot title: the preset, or where it started from."""
        return self.model if not self.init_from else f"from {self.init_from}"

    @property
    def run_dir(self) -> Path:
        return run_dir(self.root, self.run)


def run_dir(root, run: str) -> Path:
    return layout.run_dir(root, run)


@dataclass(frozen=True)
class Resolved:
    """A PretrainConfig made concrete against the shards manifest and the world size."""

    model: ModelConfig
    optim: OptimConfig
    masking: MaskingConfig
    manifest: dict
    batch_size: int
    micro_batch_size: int
    accumulation: int
    world_size: int
    steps: int
    block_size: int
    static: bool
    nsp: bool


def uri_root_problem(root: str, stage: str) -> str | None:
    """Why `root` cannot hold `stage`'s outputs, or None. Checkpoints, Ray Train state and
    job results are local files; with `s3://b/r` they would land in a local folder `s3:`
    and be lost with the machine."""
    if not storage.is_uri(root):
        return None
    return (f"--root {root}: {stage} needs a filesystem path (local, or shared and mounted on "
            "every worker, e.g. /mnt/fsx/run); URIs work for build-corpus, import-corpus, "
            "train-tokenizer and shard-corpus")


def _tokenizer_mismatch(root: str, manifest: dict) -> str | None:
    """Why `<root>/tokenizer/` is not the tokenizer the shards were encoded with, or None.
    Checkpoints ship that directory as the model's tokenizer, so a tokenizer trained again
    after shard-corpus would make every checkpoint unusable (ids beyond the model's vocab).
    `root` is a filesystem path: resolve() refuses URIs before this."""
    info = Path(root) / layout.TOKENIZER_INFO
    if not info.is_file() or not manifest.get("tokenizer_sha256"):
        return None
    try:
        have = json.loads(info.read_text()).get("tokenizer_sha256")
    except (OSError, ValueError) as exc:
        return f"{info} cannot be read ({exc})"
    if have != manifest["tokenizer_sha256"]:
        return (f"{info.parent} is not the tokenizer the shards were encoded with (sha256 "
                f"{str(have)[:12]}… vs the manifest's {manifest['tokenizer_sha256'][:12]}…): "
                f"train-tokenizer ran again after shard-corpus; rerun shard-corpus")
    return None


def resolve(cfg: PretrainConfig, world_size: int = 1, manifest: dict | None = None) -> Resolved:
    """Presets + overrides + what the shards dictate; raises PretrainConfigError naming the
    field when something does not fit."""
    problem = uri_root_problem(cfg.root, "pretrain")
    if problem:
        raise PretrainConfigError(problem)
    if manifest is None:
        _, _, manifest = load_manifest(cfg.root)
    mismatch = _tokenizer_mismatch(cfg.root, manifest)
    if mismatch:
        raise PretrainConfigError(mismatch)
    T = int(manifest["block_size"])
    fmt = manifest.get("format", shard_format.DEFAULT_FORMAT)
    nsp = shard_format.is_pair(fmt) if cfg.nsp is None else bool(cfg.nsp)
    if nsp and not shard_format.is_pair(fmt):
        raise PretrainConfigError(f"nsp=True needs a pair format; the shards are {fmt!r}")
    mcfg, ocfg = _model_and_optim(cfg, manifest, T, nsp)
    ocfg, batch, micro, steps = _sizes(cfg, ocfg, world_size, manifest)
    static, mask_cfg = _masking(cfg, mcfg, manifest)
    if cfg.amp not in ("bf16", "fp32"):
        raise PretrainConfigError(f"amp must be 'bf16' or 'fp32', got {cfg.amp!r}")
    return Resolved(model=mcfg, optim=ocfg, masking=mask_cfg, manifest=manifest,
                    batch_size=batch, micro_batch_size=micro,
                    accumulation=batch // (world_size * micro), world_size=world_size,
                    steps=steps, block_size=T, static=static, nsp=nsp)


def _model_and_optim(cfg: PretrainConfig, manifest: dict, T: int,
                     nsp: bool) -> tuple[ModelConfig, OptimConfig]:
    """The model preset (or the init_from checkpoint's shape) with the shards' vocabulary and
    special ids, and the optimizer preset (or the continued-pretraining recipe)."""
    vocab, mask_id = int(manifest["vocab_size"]), int(manifest["mask_id"])
    model_kw = dict(vocab_size=vocab, pad_id=manifest.get("pad_id", 1),
                    bos_id=manifest.get("bos_id", 0), eos_id=manifest.get("eos_id", 2),
                    unk_id=manifest.get("unk_id", 3),
                    mask_id=None if mask_id == vocab - 1 else mask_id, nsp_head=nsp)
    if T > 512 and not cfg.init_from:
        model_kw["max_positions"] = T
    try:
        mcfg = (_checkpoint_model(cfg, model_kw) if cfg.init_from else
                ModelConfig.named(cfg.model, **{**model_kw, **cfg.model_overrides}))
        ocfg = cfg.optim_config()
    except (ValueError, TypeError) as exc:
        raise PretrainConfigError(str(exc)) from exc
    if mcfg.vocab_size != vocab:
        raise PretrainConfigError(f"model vocab_size {mcfg.vocab_size} != the shards' {vocab}")
    if mcfg.max_positions < T:
        raise PretrainConfigError(f"model max_positions {mcfg.max_positions} < block size {T}"
                                  + (f" (from {cfg.init_from}/config.json: shard the corpus "
                                     f"with --block-size {mcfg.max_positions} or less)"
                                     if cfg.init_from else ""))
    return mcfg, ocfg


def adopt_tokenizer_hint(root: str, init_from: str) -> str:
    """The commands that make a run root's shards fit a checkpoint's tokenizer."""
    return (f"adopt the checkpoint's tokenizer and shard again: `roberta train-tokenizer "
            f"--root {root} --existing {init_from}`, then `roberta shard-corpus --root {root}` "
            f"with your --format and --block-size (`roberta pipeline --root NEW_ROOT "
            f"--init-from {init_from}` does both)")


def _checkpoint_model(cfg: PretrainConfig, model_kw: dict) -> ModelConfig:
    """The init_from checkpoint's ModelConfig (its weights checked against its config.json),
    with the shards' special ids and the non-shape overrides; an error naming both sides when
    the shards' vocabulary, a named preset or an override disagrees with it."""
    try:
        ck = check_checkpoint(cfg.init_from)
    except HFCheckpointError as exc:
        raise PretrainConfigError(f"--init-from {exc}") from exc
    where = f"{cfg.init_from}/config.json"
    if ck.vocab_size != model_kw["vocab_size"] or any(
            getattr(ck, k) != model_kw[k] for k in ("pad_id", "bos_id", "eos_id")):
        raise PretrainConfigError(
            f"the shards were tokenized with another tokenizer than the checkpoint's: "
            f"{model_kw['vocab_size']} ids vs {ck.vocab_size} in {where}; "
            + adopt_tokenizer_hint(cfg.root, cfg.init_from))
    if cfg.model is not None:
        preset = ModelConfig.named(cfg.model)
        if any(getattr(preset, k) != getattr(ck, k) for k in PRESET_SHAPE):
            raise PretrainConfigError(
                f"model preset {cfg.model!r} is {_shape(preset)}, but {where} is {_shape(ck)}: "
                f"leave the preset out (the shape comes from the checkpoint)")
    unknown = sorted(set(cfg.model_overrides) - field_names(ModelConfig))
    if unknown:
        raise PretrainConfigError(f"unknown ModelConfig field(s) {unknown}")
    clash = [f"{k}={v} ({where} has {getattr(ck, k)})" for k, v in cfg.model_overrides.items()
             if k in CHECKPOINT_FIELDS and v != getattr(ck, k)]
    if clash:
        raise PretrainConfigError(f"model override {', '.join(clash)}: the checkpoint's "
                                  f"weights fix it")
    # The classifier of a finetuned checkpoint is not trained here; the NSP head follows the
    # shards' format; unk and <mask> come from the tokenizer (HF configs do not name them).
    return ck.replace(num_labels=0, **{k: model_kw[k] for k in ("unk_id", "mask_id",
                                                                 "nsp_head")},
                      **cfg.model_overrides)


def _shape(m: ModelConfig) -> str:
    return (f"{m.num_layers} layers x {m.hidden_size} hidden, {m.num_heads} heads, "
            f"FFN {m.ffn_size}")


def _sizes(cfg: PretrainConfig, ocfg: OptimConfig, world_size: int,
           manifest: dict) -> tuple[OptimConfig, int, int, int]:
    """(optimizer config spanning the run, batch, micro-batch, steps), checked against the
    worker count and the train split."""
    # `is None`, not `or`: an explicit 0 is an error below, not "use the preset"
    batch = int(ocfg.batch_size if cfg.batch_size is None else cfg.batch_size)
    steps = int(ocfg.total_steps if cfg.steps is None else cfg.steps)
    if steps < 1:
        raise PretrainConfigError(f"steps must be >= 1, got {steps}")
    if "total_steps" not in cfg.optim_overrides:
        ocfg = ocfg.replace(total_steps=steps)    # the schedule spans the run
    ocfg = ocfg.replace(batch_size=batch)
    if cfg.init_from and cfg.optim is None:
        ocfg = _continued_schedule(ocfg, cfg.optim_overrides)
    if batch < 1:
        raise PretrainConfigError(f"batch_size must be >= 1, got {batch}")
    # Default micro-batch: 16 sequences, or fewer when a worker's share of the batch is
    # smaller or not a multiple of 16 (e.g. --batch-size 8 just works).
    micro = int(cfg.micro_batch_size if cfg.micro_batch_size is not None
                else math.gcd(max(batch // world_size, 1), 16))
    if micro < 1:
        raise PretrainConfigError(f"micro_batch_size must be >= 1, got {micro}")
    if batch % (world_size * micro):
        raise PretrainConfigError(
            f"batch_size {batch} sequences is not a multiple of workers x micro_batch_size = "
            f"{world_size} x {micro} = {world_size * micro}; choose sizes that divide")
    train_blocks = int(manifest["splits"].get("train", {}).get("blocks", 0))
    if train_blocks // world_size < micro:   # a rank's share (ShardReader, drop_last)
        raise PretrainConfigError(
            f"train split has {train_blocks} blocks for {world_size} worker(s); each needs at "
            f"least micro_batch_size={micro}: add data or lower --micro-batch-size/--workers")
    return ocfg, batch, micro, steps


def _continued_schedule(ocfg: OptimConfig, overrides: dict) -> OptimConfig:
    """The recipe's warm-up (6% of the schedule) and peak LR (by batch size) for this run's
    sizes, where the user did not set them."""
    if "warmup_steps" not in overrides:
        ocfg = ocfg.replace(warmup_steps=max(1, round(CONTINUED_WARMUP_FRACTION *
                                                      ocfg.total_steps)))
    if "peak_lr" not in overrides and ocfg.batch_size < CONTINUED_RECIPE["batch_size"]:
        ocfg = ocfg.replace(peak_lr=CONTINUED_SMALL_BATCH_LR)
    return ocfg


def _masking(cfg: PretrainConfig, mcfg: ModelConfig,
             manifest: dict) -> tuple[bool, MaskingConfig]:
    """(static masks?, the masking config), static only where the shards hold masks."""
    if cfg.masking not in ("dynamic", "static"):
        raise PretrainConfigError(f"masking must be 'dynamic' or 'static', got {cfg.masking!r}")
    static = cfg.masking == "static"
    if static and not int(manifest.get("static_masks") or 0):
        raise PretrainConfigError("masking='static' but the shards hold no static masks: rerun "
                                  "shard-corpus with static_masks=K")
    try:
        return static, MaskingConfig.for_model(mcfg, **cfg.masking_overrides)
    except TypeError as exc:
        raise PretrainConfigError(f"masking_overrides: {exc}") from exc


__all__ = ["PretrainConfig", "PretrainConfigError", "Resolved", "resolve", "run_dir",
           "uri_root_problem", "adopt_tokenizer_hint", "CONTINUED_RECIPE"]
