"""Hugging Face layout in and out: `config.json` + `model.safetensors` (+ tokenizer files).

Export writes what `RobertaForMaskedLM.save_pretrained` writes: HF key names, Q/K/V split out of
our fused projection, the internal vocabulary padding sliced off, the decoder weight omitted
(HF ties it to the word embeddings). Our optional heads are kept under `classifier.*` (HF's
RobertaForSequenceClassification names) and `nsp_head.*`; HF's MaskedLM ignores them.

Import reads an HF RoBERTa checkpoint directory (safetensors, sharded safetensors, or
`pytorch_model.bin` loaded with weights_only=True -- never unrestricted pickle).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from runroot import storage
from training.config import ModelConfig
from training.model import Roberta

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "dict.txt")
_OUR_CONFIG_KEY = "roberta_pipeline"   # our full ModelConfig, for a lossless round trip


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------

def hf_config_dict(cfg: ModelConfig) -> dict:
    return {
        "architectures": ["RobertaForMaskedLM"],
        "model_type": "roberta",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.ffn_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout,
        "max_position_embeddings": cfg.num_position_rows,   # 514 for 512 tokens
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": cfg.init_std,
        "layer_norm_eps": cfg.layer_norm_eps,
        "pad_token_id": cfg.pad_id,
        "bos_token_id": cfg.bos_id,
        "eos_token_id": cfg.eos_id,
        "position_embedding_type": "absolute",
        "is_decoder": False,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "dtype": "float32",
        **({"num_labels": cfg.num_labels} if cfg.num_labels > 0 else {}),
        _OUR_CONFIG_KEY: cfg.to_dict(),
    }


def config_from_hf(d: dict, **overrides) -> ModelConfig:
    if d.get("model_type", "roberta") not in ("roberta", "xlm-roberta", "camembert"):
        raise ValueError(f"not a RoBERTa config: model_type={d.get('model_type')!r}")
    act = d.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"unsupported hidden_act {act!r}: our encoder uses exact (erf) GELU")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute (learned) position embeddings are supported")
    if _OUR_CONFIG_KEY in d:
        return ModelConfig.from_dict({**d[_OUR_CONFIG_KEY], **overrides})
    pad = d.get("pad_token_id", 1)
    fields = dict(
        vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
        ffn_size=d["intermediate_size"],
        max_positions=d.get("max_position_embeddings", 514) - pad - 1,
        type_vocab_size=d.get("type_vocab_size", 1), pad_id=pad,
        bos_id=d.get("bos_token_id", 0), eos_id=d.get("eos_token_id", 2),
        dropout=d.get("hidden_dropout_prob", 0.1),
        attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=d.get("layer_norm_eps", 1e-5), init_std=d.get("initializer_range", 0.02),
    )
    return ModelConfig(**{**fields, **overrides})


# --------------------------------------------------------------------------------------------
# state-dict mapping
# --------------------------------------------------------------------------------------------

_LAYER_MAP = {  # ours (under layers.{i}.) -> HF (under roberta.encoder.layer.{i}.)
    "attn.out": "attention.output.dense",
    "ln_attn": "attention.output.LayerNorm",
    "up": "intermediate.dense",
    "down": "output.dense",
    "ln_ffn": "output.LayerNorm",
}
_TOP_MAP = {
    "embed.tokens": "roberta.embeddings.word_embeddings",
    "embed.positions": "roberta.embeddings.position_embeddings",
    "embed.token_types": "roberta.embeddings.token_type_embeddings",
    "embed.ln": "roberta.embeddings.LayerNorm",
    "lm_head.dense": "lm_head.dense",
    "lm_head.ln": "lm_head.layer_norm",
}


def to_hf_state_dict(model: Roberta) -> dict[str, torch.Tensor]:
    """Our parameters under HF RobertaForMaskedLM names (float32, contiguous, vocab unpadded)."""
    cfg = model.cfg
    src = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for ours, hf in _TOP_MAP.items():
        for p in ("weight", "bias"):
            if f"{ours}.{p}" in src:
                out[f"{hf}.{p}"] = src[f"{ours}.{p}"]
    out["roberta.embeddings.word_embeddings.weight"] = src["embed.tokens.weight"][: cfg.vocab_size]
    out["lm_head.bias"] = src["lm_head.bias"]
    for i in range(cfg.num_layers):
        pre, hpre = f"layers.{i}.", f"roberta.encoder.layer.{i}."
        for p in ("weight", "bias"):
            q, k, v = src[f"{pre}attn.qkv.{p}"].chunk(3, dim=0)
            out[f"{hpre}attention.self.query.{p}"] = q
            out[f"{hpre}attention.self.key.{p}"] = k
            out[f"{hpre}attention.self.value.{p}"] = v
            for ours, hf in _LAYER_MAP.items():
                out[f"{hpre}{hf}.{p}"] = src[f"{pre}{ours}.{p}"]
    for k, v in src.items():   # optional heads keep their names (classifier.* is HF's too)
        if k.startswith(("classifier.", "nsp_head.")):
            out[k] = v
    return {k: v.clone().contiguous() for k, v in out.items()}


def from_hf_state_dict(sd: dict[str, torch.Tensor], cfg: ModelConfig) -> tuple[dict, list[str]]:
    """HF RoBERTa keys -> our state dict. Returns (state_dict, ignored HF keys)."""
    # Accept RobertaForMaskedLM (roberta.*), bare RobertaModel (embeddings.*), or other prefixes.
    if not any(k.startswith("roberta.") for k in sd):
        sd = {(k if k.startswith(("lm_head.", "classifier.")) else f"roberta.{k}"): v
              for k, v in sd.items()}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return sd[key]

    out: dict[str, torch.Tensor] = {}
    for ours, hf in _TOP_MAP.items():
        for p in ("weight", "bias"):
            if f"{hf}.{p}" in sd:
                out[f"{ours}.{p}"] = take(f"{hf}.{p}")
    if "lm_head.bias" in sd:
        out["lm_head.bias"] = take("lm_head.bias")
    elif "lm_head.decoder.bias" in sd:
        out["lm_head.bias"] = take("lm_head.decoder.bias")
    used.update(k for k in ("lm_head.decoder.weight", "lm_head.decoder.bias") if k in sd)
    words = out["embed.tokens.weight"]
    pad_rows = cfg.padded_vocab_size - words.shape[0]
    out["embed.tokens.weight"] = torch.cat([words, words.new_zeros(pad_rows, words.shape[1])])
    for i in range(cfg.num_layers):
        pre, hpre = f"layers.{i}.", f"roberta.encoder.layer.{i}."
        for p in ("weight", "bias"):
            out[f"{pre}attn.qkv.{p}"] = torch.cat(
                [take(f"{hpre}attention.self.{n}.{p}") for n in ("query", "key", "value")], dim=0)
            for ours, hf in _LAYER_MAP.items():
                out[f"{pre}{ours}.{p}"] = take(f"{hpre}{hf}.{p}")
    for k in sd:
        if k.startswith(("classifier.", "nsp_head.")):
            out[k] = take(k)
    ignored = sorted(set(sd) - used)
    return out, ignored


# --------------------------------------------------------------------------------------------
# directories
# --------------------------------------------------------------------------------------------

def export_hf(model: Roberta, out_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike | None = None,
              metadata: dict[str, str] | None = None) -> Path:
    """Write `config.json` + `model.safetensors` (+ tokenizer files from `tokenizer_dir`).

    Loadable by `transformers.AutoModelForMaskedLM.from_pretrained(out_dir)`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = to_hf_state_dict(model)
    with storage.atomic_file(out / "model.safetensors") as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt", **(metadata or {})})
    # keys in hf_config_dict's order, unsorted: the format exports have always had
    storage.save_json(out / "config.json", hf_config_dict(model.cfg), sort_keys=False)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, out, model.cfg)
    return out


def copy_tokenizer_files(src: str | os.PathLike, dst: str | os.PathLike, cfg: ModelConfig) -> list[str]:
    src, dst = Path(src), Path(dst)
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
            copied.append(name)
    if copied and "tokenizer_config.json" not in copied:
        # AutoTokenizer needs to know the class and the special tokens.
        tc = {"tokenizer_class": "RobertaTokenizer", "model_max_length": cfg.max_positions,
              "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
              "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
        storage.save_json(dst / "tokenizer_config.json", tc, sort_keys=False)
        copied.append("tokenizer_config.json")
    return copied


def read_hf_weights(model_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    d = Path(model_dir)
    if (d / "model.safetensors").is_file():
        return load_file(str(d / "model.safetensors"))
    if (d / "model.safetensors.index.json").is_file():
        index = json.loads((d / "model.safetensors.index.json").read_text())
        sd: dict[str, torch.Tensor] = {}
        for shard in sorted(set(index["weight_map"].values())):
            sd.update(load_file(str(d / shard)))
        return sd
    if (d / "pytorch_model.bin").is_file():
        return torch.load(d / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{d}: no model.safetensors, model.safetensors.index.json or "
                            "pytorch_model.bin")


def load_hf(model_dir: str | os.PathLike, strict: bool = True, **config_overrides) -> Roberta:
    """Build our model from an HF RoBERTa checkpoint directory (or one we exported).

    strict: every parameter of our model must come from the checkpoint, except the optional
    heads and the LM head (absent from bare RobertaModel checkpoints), which stay initialised.
    """
    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d}: no config.json")
    cfg = config_from_hf(json.loads((d / "config.json").read_text()), **config_overrides)
    sd, _ignored = from_hf_state_dict(read_hf_weights(d), cfg)
    model = Roberta(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    optional = ("lm_head.", "classifier.", "nsp_head.")
    hard_missing = [k for k in missing if not k.startswith(optional)]
    if strict and (hard_missing or unexpected):
        raise ValueError(f"{d}: checkpoint does not fit the config: missing {hard_missing}, "
                         f"unexpected {unexpected}")
    return model


__all__ = ["export_hf", "load_hf", "to_hf_state_dict", "from_hf_state_dict", "hf_config_dict",
           "config_from_hf", "read_hf_weights", "copy_tokenizer_files"]
