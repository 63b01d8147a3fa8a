"""Configuration dataclasses for the RoBERTa training core.

`ModelConfig` describes the network (paper Table 9 shapes for `base`/`large`), `OptimConfig`
the optimizer and schedule (Table 9 peak LR / warm-up / steps), `MaskingConfig` the MLM
corruption (fairseq `MaskedLMConfig` defaults). Each has named presets and every field can be
overridden: `ModelConfig.named("tiny", vocab_size=1000)`.

This module imports nothing beyond the standard library so that it can be read anywhere.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any


def field_names(cls) -> set[str]:
    """The fields of a config dataclass (to refuse or drop unknown keys)."""
    return {f.name for f in dataclasses.fields(cls)}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _require(ok: bool, message: str) -> None:
    """A range check of a config field: ValueError naming the field (the CLI's exit 2)."""
    if not ok:
        raise ValueError(message)


def _named(cls, presets: dict[str, dict[str, Any]], name: str, overrides: dict[str, Any]):
    if name not in presets:
        raise ValueError(f"unknown {cls.__name__} preset {name!r}; choose one of {sorted(presets)}")
    known = field_names(cls)
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"unknown {cls.__name__} field(s) {bad}; fields are {sorted(known)}")
    return cls(**{**presets[name], **overrides})


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

_MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # CPU unit tests: a couple of milliseconds per step.
    "tiny": dict(num_layers=2, hidden_size=64, num_heads=2, ffn_size=256),
    # CPU integration tests / learning checks: still seconds per hundred steps.
    "small": dict(num_layers=4, hidden_size=256, num_heads=4, ffn_size=1024),
    # Paper Table 9.
    "base": dict(num_layers=12, hidden_size=768, num_heads=12, ffn_size=3072),
    "large": dict(num_layers=24, hidden_size=1024, num_heads=16, ffn_size=4096),
}


@dataclass(frozen=True)
class ModelConfig:
    """RoBERTa encoder shape. Token ids follow fairseq/RoBERTa order: <s>=0 <pad>=1 </s>=2
    <unk>=3, <mask>=last id (vocab_size - 1) unless `mask_id` says otherwise."""

    num_layers: int = 12
    hidden_size: int = 768
    num_heads: int = 12
    ffn_size: int = 3072
    vocab_size: int = 50265
    max_positions: int = 512          # usable tokens; the table has max_positions + pad_id + 1 rows
    type_vocab_size: int = 1          # RoBERTa: one (all-zero) token type, kept for HF layout
    pad_id: int = 1
    bos_id: int = 0
    eos_id: int = 2
    unk_id: int = 3
    mask_id: int | None = None        # None -> vocab_size - 1
    dropout: float = 0.1              # hidden dropout (embeddings, residual branches)
    attention_dropout: float = 0.1    # dropout on attention probabilities
    layer_norm_eps: float = 1e-5
    # Under autocast, LayerNorm outputs the autocast dtype (statistics and affine still in
    # float32) instead of float32, so the residual stream is stored in bf16: half the
    # activation traffic. False keeps torch autocast's float32 LayerNorm outputs (as HF does).
    low_precision_layernorm: bool = True
    init_std: float = 0.02
    vocab_multiple: int = 64          # pad the embedding/decoder rows internally for fast GEMMs
    nsp_head: bool = False            # next-sentence head, only for the pair input formats
    num_labels: int = 0               # >0 adds a sequence-classification head on <s>

    def __post_init__(self):
        # Checked here, whatever built the config (CLI overrides, a deployment's JSON, an HF
        # config.json): a 0-layer model would otherwise train and save without complaint.
        for name in ("num_layers", "hidden_size", "num_heads", "ffn_size", "vocab_size",
                     "max_positions", "type_vocab_size"):
            value = getattr(self, name)
            _require(_is_integer(value) and value >= 1,
                     f"{name} must be an integer >= 1, got {value!r}")
        _require(self.hidden_size % self.num_heads == 0,
                 f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
        _require(0 <= self.pad_id < self.vocab_size,
                 f"pad_id {self.pad_id} outside vocab of {self.vocab_size}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            _require(_is_number(value) and 0 <= value < 1,
                     f"{name} must be in [0, 1), got {value!r}")

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "ModelConfig":
        return _named(cls, _MODEL_PRESETS, name, overrides)

    @staticmethod
    def preset_names() -> list[str]:
        return list(_MODEL_PRESETS)

    def replace(self, **overrides: Any) -> "ModelConfig":
        return dataclasses.replace(self, **overrides)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mask_token_id(self) -> int:
        return self.vocab_size - 1 if self.mask_id is None else self.mask_id

    @property
    def num_position_rows(self) -> int:
        """fairseq make_positions numbers real tokens pad_id+1 ... pad_id+max_positions."""
        return self.max_positions + self.pad_id + 1

    @property
    def padded_vocab_size(self) -> int:
        m = max(1, self.vocab_multiple)
        return (self.vocab_size + m - 1) // m * m

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = field_names(cls)
        return cls(**{k: v for k, v in d.items() if k in known})

    # ---- FLOP accounting (PaLM appendix B, encoder-MLM adaptation; see training_anchors §8) ----
    def flops_per_token(self, seq_len: int, mask_fraction: float = 0.15,
                        dense_head: bool = False) -> float:
        """Training FLOPs per token: 6 x (matmul params) + attention, LM head on masked tokens
        only (or on every token with dense_head=True, like HF's RobertaForMaskedLM)."""
        d, L = self.hidden_size, self.num_layers
        n_enc = L * (4 * d * d + 2 * d * self.ffn_size)
        n_head = d * d + d * self.padded_vocab_size
        attn = 12 * L * d * seq_len
        p = 1.0 if dense_head else mask_fraction
        return 6 * n_enc + attn + 6 * n_head * p


# --------------------------------------------------------------------------------------------
# Optimizer and schedule
# --------------------------------------------------------------------------------------------

_OPTIM_PRESETS: dict[str, dict[str, Any]] = {
    # Small configs: short runs on CPU; peak LR as the README's small-batch row (1e-4 at 256 is
    # too slow to show learning in a few hundred steps, so these are test-friendly values).
    "tiny": dict(peak_lr=1e-3, warmup_steps=20, total_steps=1000, batch_size=32),
    "small": dict(peak_lr=5e-4, warmup_steps=100, total_steps=10_000, batch_size=256),
    # Paper Table 9 (fairseq_recipe.md §2.1): 8K sequences, 500K steps.
    "base": dict(peak_lr=6e-4, warmup_steps=24_000, total_steps=500_000, batch_size=8192),
    "large": dict(peak_lr=4e-4, warmup_steps=30_000, total_steps=500_000, batch_size=8192),
}


@dataclass(frozen=True)
class OptimConfig:
    """AdamW + linear warm-up + linear decay to 0 (fairseq polynomial_decay, power 1).

    Weight decay: fairseq's Adam decays *all* parameters (no bias/LayerNorm exclusion), and so
    do we by default (`decay_norm_and_bias=True`) to follow the paper's recipe exactly.
    """

    peak_lr: float = 6e-4
    warmup_steps: int = 24_000
    total_steps: int = 500_000
    end_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    decay_norm_and_bias: bool = True
    clip_grad_norm: float = 0.0        # 0 = no clipping (paper Table 9)
    batch_size: int = 8192             # effective sequences per optimizer step
    fused: bool | None = None          # None: fused where supported (CUDA, CPU), else foreach

    def __post_init__(self):
        # Sizes (steps, batch) are checked where the run is resolved, against the shards.
        _require(_is_number(self.peak_lr) and self.peak_lr > 0,
                 f"peak_lr must be a number > 0, got {self.peak_lr!r}")
        _require(_is_number(self.end_lr) and 0 <= self.end_lr <= self.peak_lr,
                 f"end_lr must be a number in [0, peak_lr={self.peak_lr}], got {self.end_lr!r}")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        _require(len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas),
                 f"betas must be two numbers in [0, 1), got {self.betas!r}")
        _require(_is_number(self.eps) and self.eps > 0, f"eps must be > 0, got {self.eps!r}")
        _require(_is_number(self.weight_decay) and self.weight_decay >= 0,
                 f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _require(_is_integer(self.warmup_steps) and self.warmup_steps >= 0,
                 f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "OptimConfig":
        if "betas" in overrides:
            overrides["betas"] = tuple(overrides["betas"])
        return _named(cls, _OPTIM_PRESETS, name, overrides)

    def replace(self, **overrides: Any) -> "OptimConfig":
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MaskingConfig:
    """fairseq MaskedLMConfig defaults; specials and padding are never selected.

    `static_copies`: None = dynamic masking (fresh mask every epoch). k >= 1 = BERT-style static
    masking: the mask for epoch e is the one for epoch e % k (the paper's Table 1 duplicated the
    data 10 times, i.e. k=10; k=1 is one fixed mask for the whole run).
    """

    mask_prob: float = 0.15
    leave_unmasked_prob: float = 0.1
    random_token_prob: float = 0.1
    special_ids: tuple[int, ...] = (0, 1, 2, 3)
    mask_id: int = 50264
    vocab_size: int = 50265            # random replacements drawn from non-special ids < this
    static_copies: int | None = None
    bucket: int = 64                   # pad the masked-position list to a multiple of this

    @classmethod
    def for_model(cls, model: ModelConfig, **overrides: Any) -> "MaskingConfig":
        specials = tuple(sorted({model.bos_id, model.pad_id, model.eos_id, model.unk_id}))
        base = dict(special_ids=specials, mask_id=model.mask_token_id, vocab_size=model.vocab_size)
        return cls(**{**base, **overrides})

    def replace(self, **overrides: Any) -> "MaskingConfig":
        return dataclasses.replace(self, **overrides)


__all__ = ["ModelConfig", "OptimConfig", "MaskingConfig", "field_names"]
