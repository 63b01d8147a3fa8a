"""Hugging Face layout in and out: `config.json` + `model.safetensors` (+ tokenizer files).

Export writes what `RobertaForMaskedLM.save_pretrained` writes: HF key names, Q/K/V split out of
our fused projection, the internal vocabulary padding sliced off, the decoder weight omitted
(HF ties it to the word embeddings). Our optional heads are kept under `classifier.*` (HF's
RobertaForSequenceClassification names) and `nsp_head.*`; HF's MaskedLM ignores them.

Import reads an HF RoBERTa checkpoint directory (safetensors, sharded safetensors, or
`pytorch_model.bin` loaded with weights_only=True -- never unrestricted pickle), checked first
against its config.json (training/hf_config.py, which also parses the config without torch):
a file that cannot be read, a missing weight or a shape the config does not give is an
`HFCheckpointError` naming the files, never a bare KeyError or a size-mismatch RuntimeError.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from runroot import storage
from training.config import ModelConfig
from training.hf_config import (TORCH_BIN, HFCheckpointError, check_checkpoint,
                                checkpoint_sha256, config_from_hf, hf_config_dict, read_config,
                                weight_files, weights_problem, with_roberta_prefix)
from training.model import Roberta

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "dict.txt")
_OPTIONAL_HEADS = ("lm_head.", "classifier.", "nsp_head.")   # may be absent from a checkpoint

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
    sd = with_roberta_prefix(sd)
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
    """Every tensor of the directory's weight files; HFCheckpointError naming a file that
    cannot be read (safetensors and torch raise many types for a file not their own)."""
    sd: dict[str, torch.Tensor] = {}
    for path in weight_files(model_dir):
        try:
            if path.name == TORCH_BIN:
                sd.update(torch.load(path, map_location="cpu", weights_only=True))
            else:
                sd.update(load_file(str(path)))
        except Exception as exc:  # noqa: BLE001 - named and re-raised as one type
            raise HFCheckpointError(f"{path}: cannot be read as weights "
                                    f"({type(exc).__name__}: {exc})") from exc
    return sd


def load_weights(model: Roberta, model_dir: str | os.PathLike) -> list[str]:
    """Load an HF RoBERTa directory's weights into `model`, built with the directory's shape;
    returns the checkpoint's keys left unused (e.g. a classifier the model has not).

    Every parameter of the model must come from the checkpoint, except the optional heads and
    the LM head (absent from bare RobertaModel checkpoints), which stay initialised.
    """
    d = Path(model_dir)
    weights = read_hf_weights(d)
    problem = weights_problem({k: tuple(v.shape) for k, v in weights.items()}, model.cfg)
    if problem:
        raise HFCheckpointError(f"{', '.join(map(str, weight_files(d)))} does not fit the "
                                f"model of {d / 'config.json'}: {problem}")
    sd, ignored = from_hf_state_dict(weights, model.cfg)
    own = model.state_dict()
    ignored += sorted(k for k in sd if k not in own)      # heads this model does not have
    missing, _ = model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    hard_missing = [k for k in missing if not k.startswith(_OPTIONAL_HEADS)]
    if hard_missing:
        raise HFCheckpointError(f"{d}: the checkpoint lacks {hard_missing}")
    return ignored


def load_hf(model_dir: str | os.PathLike, **config_overrides) -> Roberta:
    """Build our model from an HF RoBERTa checkpoint directory (or one we exported)."""
    model = Roberta(read_config(model_dir, **config_overrides))
    load_weights(model, model_dir)
    return model


def load_initial_weights(model: Roberta, model_dir: str | os.PathLike) -> dict:
    """Start a run from an HF RoBERTa directory's weights (`--init-from`): loaded into
    `model`, which has its shape; returns where they came from, for checkpoint.json and the
    summary: {"dir": absolute path, "sha256": of config.json and the weight files}."""
    load_weights(model, model_dir)
    return {"dir": str(Path(model_dir).resolve()), "sha256": checkpoint_sha256(model_dir)}


__all__ = ["export_hf", "load_hf", "load_weights", "load_initial_weights", "to_hf_state_dict",
           "from_hf_state_dict", "hf_config_dict", "config_from_hf", "read_hf_weights",
           "copy_tokenizer_files", "check_checkpoint", "HFCheckpointError"]
