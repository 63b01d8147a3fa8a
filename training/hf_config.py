"""A Hugging Face RoBERTa checkpoint directory, read without torch: its `config.json` as our
`ModelConfig`, the names and shapes of its weights, and whether the two fit each other.

The CLI's pre-check and `PretrainConfig`'s `resolve()` use this to refuse a bad `--init-from`
directory (not a RoBERTa checkpoint, or config and weights that disagree) before anything
starts, naming the file. Shapes come from the safetensors headers (the first bytes of each
file, read with the standard library); a `pytorch_model.bin` has to be unpickled to see them,
so for that format alone torch is imported here, and loads the file with `weights_only=True`
onto the meta device (no unrestricted pickle, no tensor data read).

HF config keys -> ours: num_hidden_layers -> num_layers, hidden_size, num_attention_heads ->
num_heads, intermediate_size -> ffn_size, vocab_size, max_position_embeddings = max_positions +
pad_token_id + 1 (RoBERTa numbers positions after the padding id: 514 rows for 512 tokens).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from training.config import ModelConfig

OUR_CONFIG_KEY = "roberta_pipeline"   # our full ModelConfig, for a lossless round trip
CONFIG_FILE = "config.json"
SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN = ("model.safetensors", "model.safetensors.index.json",
                                             "pytorch_model.bin")
# The keys that give the network's shape: guessing a missing one would build a model the
# weights do not fit, so they are required (transformers writes them all).
SHAPE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings")
_MAX_HEADER = 100 << 20          # a safetensors header larger than this is not one


class HFCheckpointError(ValueError):
    """The directory is not a usable HF RoBERTa checkpoint; the message names the file."""


# --------------------------------------------------------------------------------------------
# config.json
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
        OUR_CONFIG_KEY: cfg.to_dict(),
    }


def config_from_hf(d: dict, **overrides) -> ModelConfig:
    """Our ModelConfig from an HF RoBERTa config dict; ValueError saying what does not fit."""
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    if d.get("model_type", "roberta") not in ("roberta", "xlm-roberta", "camembert"):
        raise ValueError(f"not a RoBERTa config: model_type={d.get('model_type')!r}")
    act = d.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"unsupported hidden_act {act!r}: our encoder uses exact (erf) GELU")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute (learned) position embeddings are supported")
    if OUR_CONFIG_KEY in d:
        return ModelConfig.from_dict({**d[OUR_CONFIG_KEY], **overrides})
    bad = [k for k in SHAPE_KEYS if not (isinstance(d.get(k), int) and d[k] > 0)]
    if bad:
        raise ValueError(f"{', '.join(bad)} missing or not a positive integer "
                         f"(a RoBERTa config.json gives {', '.join(SHAPE_KEYS)})")
    pad = d.get("pad_token_id", 1)
    fields = dict(
        vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
        ffn_size=d["intermediate_size"],
        max_positions=d["max_position_embeddings"] - pad - 1,
        type_vocab_size=d.get("type_vocab_size", 1), pad_id=pad,
        bos_id=d.get("bos_token_id", 0), eos_id=d.get("eos_token_id", 2),
        dropout=d.get("hidden_dropout_prob", 0.1),
        attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=d.get("layer_norm_eps", 1e-5), init_std=d.get("initializer_range", 0.02),
    )
    return ModelConfig(**{**fields, **overrides})


def read_config(model_dir: str | os.PathLike, **overrides) -> ModelConfig:
    """`<model_dir>/config.json` as our ModelConfig; HFCheckpointError naming the file."""
    d = Path(model_dir)
    if not d.is_dir():
        raise HFCheckpointError(f"{d}: not a directory (an HF RoBERTa checkpoint directory "
                                f"holds {CONFIG_FILE} and {SAFETENSORS} or {TORCH_BIN})")
    path = d / CONFIG_FILE
    if not path.is_file():
        raise HFCheckpointError(f"{path}: missing: {d} is not an HF checkpoint directory")
    try:
        return config_from_hf(json.loads(path.read_text()), **overrides)
    except (OSError, ValueError, TypeError) as exc:   # JSONDecodeError is a ValueError
        raise HFCheckpointError(f"{path}: not a usable RoBERTa config ({exc})") from exc


# --------------------------------------------------------------------------------------------
# the weight files and their shapes
# --------------------------------------------------------------------------------------------

def weight_files(model_dir: str | os.PathLike) -> list[Path]:
    """The files holding the weights: one safetensors file, the shards its index names, or
    `pytorch_model.bin` (in that order of preference, as transformers does)."""
    d = Path(model_dir)
    if (d / SAFETENSORS).is_file():
        return [d / SAFETENSORS]
    index = d / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise HFCheckpointError(f"{index}: not a safetensors index ({exc})") from exc
        missing = [s for s in shards if not (d / s).is_file()]
        if missing:
            raise HFCheckpointError(f"{index}: names {', '.join(missing)}, not in {d}")
        return [d / s for s in shards]
    if (d / TORCH_BIN).is_file():
        return [d / TORCH_BIN]
    raise HFCheckpointError(f"{d}: no weights ({SAFETENSORS}, {SAFETENSORS_INDEX} or "
                            f"{TORCH_BIN})")


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header (8-byte little-endian length, then JSON), with
    the file's length checked against the last tensor's end (a truncated file)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 0 < n <= min(_MAX_HEADER, size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(f.read(n))
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        end = max((v["data_offsets"][1] for v in tensors.values()), default=0)
        shapes = {k: tuple(int(x) for x in v["shape"]) for k, v in tensors.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise HFCheckpointError(f"{path}: not a safetensors file ({exc})") from exc
    if 8 + n + end > size:
        raise HFCheckpointError(f"{path}: truncated ({size} bytes, its header needs "
                                f"{8 + n + end})")
    return shapes


def torch_bin_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a `pytorch_model.bin`: unpickled with weights_only=True (tensors and
    plain containers only) onto the meta device, so no tensor data is read."""
    import torch

    try:
        sd = torch.load(path, map_location="meta", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a file not its own
        raise HFCheckpointError(f"{path}: cannot be read as weights ({type(exc).__name__}: "
                                f"{exc})") from exc
    if not (isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())):
        raise HFCheckpointError(f"{path}: not a state dict of tensors")
    return {k: tuple(v.shape) for k, v in sd.items()}


def weight_shapes(model_dir: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    files = weight_files(model_dir)
    read = torch_bin_shapes if files[0].name == TORCH_BIN else safetensors_shapes
    return {k: v for f in files for k, v in read(f).items()}


# --------------------------------------------------------------------------------------------
# does a set of weights fit a config?
# --------------------------------------------------------------------------------------------

def with_roberta_prefix(d: dict) -> dict:
    """Keys of a bare RobertaModel (`embeddings.*`, `encoder.*`) under RobertaForMaskedLM's
    `roberta.` prefix; the heads keep theirs."""
    if any(k.startswith("roberta.") for k in d):
        return d
    return {(k if k.startswith(("lm_head.", "classifier.", "nsp_head.")) else f"roberta.{k}"): v
            for k, v in d.items()}


def encoder_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """HF key -> shape of every encoder weight a RoBERTa of this config has."""
    H, F = cfg.hidden_size, cfg.ffn_size
    e = "roberta.embeddings."
    out = {f"{e}word_embeddings.weight": (cfg.vocab_size, H),
           f"{e}position_embeddings.weight": (cfg.num_position_rows, H),
           f"{e}token_type_embeddings.weight": (cfg.type_vocab_size, H),
           f"{e}LayerNorm.weight": (H,), f"{e}LayerNorm.bias": (H,)}
    linear = {"attention.self.query": (H, H), "attention.self.key": (H, H),
              "attention.self.value": (H, H), "attention.output.dense": (H, H),
              "intermediate.dense": (F, H), "output.dense": (H, F)}
    for i in range(cfg.num_layers):
        pre = f"roberta.encoder.layer.{i}."
        for name, (rows, cols) in linear.items():
            out[f"{pre}{name}.weight"], out[f"{pre}{name}.bias"] = (rows, cols), (rows,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            out[f"{pre}{norm}.weight"], out[f"{pre}{norm}.bias"] = (H,), (H,)
    return out


def lm_head_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    H = cfg.hidden_size
    return {"lm_head.dense.weight": (H, H), "lm_head.dense.bias": (H,),
            "lm_head.layer_norm.weight": (H,), "lm_head.layer_norm.bias": (H,),
            "lm_head.bias": (cfg.vocab_size,)}


def weights_problem(shapes: dict[str, tuple[int, ...]], cfg: ModelConfig) -> str | None:
    """Why weights of these shapes (HF names) cannot be a RoBERTa of `cfg`, or None. The MLM
    head may be absent (a bare RobertaModel: the head then starts fresh), not half there."""
    shapes = with_roberta_prefix(dict(shapes))
    if "lm_head.decoder.bias" in shapes and "lm_head.bias" not in shapes:
        shapes["lm_head.bias"] = shapes["lm_head.decoder.bias"]
    want = encoder_shapes(cfg)
    if any(k.startswith("lm_head.") for k in shapes):
        want.update(lm_head_shapes(cfg))
    for key, shape in want.items():
        if key not in shapes:
            return f"{key} is missing"
        if tuple(shapes[key]) != shape:
            return (f"{key} has shape {list(shapes[key])}, the config's needs {list(shape)} "
                    f"(layers={cfg.num_layers}, hidden={cfg.hidden_size}, "
                    f"ffn={cfg.ffn_size}, vocab={cfg.vocab_size}, "
                    f"positions={cfg.num_position_rows})")
    layers = {int(m.group(1)) for k in shapes
              if (m := re.match(r"roberta\.encoder\.layer\.(\d+)\.", k))}
    if layers and max(layers) + 1 != cfg.num_layers:
        return f"the weights have {max(layers) + 1} layers, the config {cfg.num_layers}"
    return None


def check_checkpoint(model_dir: str | os.PathLike, **overrides) -> ModelConfig:
    """The ModelConfig of an HF RoBERTa directory whose weights fit its config.json;
    HFCheckpointError naming the files otherwise. Reads no tensor data."""
    cfg = read_config(model_dir, **overrides)
    files = weight_files(model_dir)
    problem = weights_problem(weight_shapes(model_dir), cfg)
    if problem:
        names = ", ".join(str(f) for f in files)
        raise HFCheckpointError(f"{names} does not fit {Path(model_dir) / CONFIG_FILE}: "
                                f"{problem}")
    return cfg


def checkpoint_sha256(model_dir: str | os.PathLike) -> str:
    """One sha256 over config.json and the weight files (name and content of each): what a
    run started from, recorded in its checkpoints."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for path in [d / CONFIG_FILE, *weight_files(d)]:
        with open(path, "rb") as f:
            h.update(f"{path.name}\0{hashlib.file_digest(f, 'sha256').hexdigest()}\n".encode())
    return h.hexdigest()


__all__ = ["HFCheckpointError", "hf_config_dict", "config_from_hf", "read_config",
           "weight_files", "weight_shapes", "weights_problem", "check_checkpoint",
           "checkpoint_sha256", "with_roberta_prefix", "OUR_CONFIG_KEY", "SHAPE_KEYS"]
