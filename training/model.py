"""The RoBERTa encoder, read top to bottom.

Numerically the same network as fairseq's `RobertaModel` and Hugging Face's
`RobertaForMaskedLM` (so weights move both ways, see `hf_io.py`):

  embeddings = token + learned position (fairseq make_positions: real tokens are numbered
               pad_id+1, pad_id+2, ...; padding gets pad_id) + token type 0; LayerNorm; dropout
  layer      = post-LN:  x = LN(x + drop(out(attn(x))));  x = LN(x + drop(down(gelu(up(x)))))
  LM head    = dense -> exact-erf GELU -> LN -> decoder tied to the token embeddings + bias

What is different is only *how* it is computed, for speed:
  - one fused QKV projection and `F.scaled_dot_product_attention` (flash kernel when the batch
    has no padding: the caller passes attention_mask=None then, see masking.py);
  - the LM head runs only on the masked positions, gathered by a fixed-size (bucketed) index
    list whose padding entries carry target -100, so `torch.compile` sees static shapes;
  - in eager training the decoder GEMM and the cross-entropy are one autograd function
    (`LinearCrossEntropy`, linear_cross_entropy.py) that makes no log-probability buffer;
  - under autocast, LayerNorm returns the autocast dtype (computed in float32), so the residual
    stream between layers is bf16 rather than autocast's float32 (MosaicBERT's "low precision
    LayerNorm"); float32 runs are unchanged;
  - the token embedding (= decoder) has its rows padded to a multiple of 64; the padding rows
    are zero, never looked up, and their logits are forced to -inf so they are never predicted;
    export slices them off.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.config import ModelConfig
from training.linear_cross_entropy import LinearCrossEntropy
from training.masking import IGNORE_INDEX


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm (same parameters and state_dict) that, under autocast and when
    `low_precision` is set, normalises in float32 and returns the autocast dtype.

    torch autocast runs layer_norm in float32 and returns float32, which makes every residual
    add, dropout and saved activation between layers twice the size of the bf16 GEMM outputs.
    Rounding the LayerNorm *output* to bf16 is what the following GEMM does to it anyway."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.low_precision = cfg.low_precision_layernorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = x.device.type
        if not (self.low_precision and torch.is_autocast_enabled(dev)):
            return super().forward(x)
        with torch.autocast(dev, enabled=False):
            y = F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.to(torch.get_autocast_dtype(dev))


class Embeddings(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pad_id = cfg.pad_id
        self.tokens = nn.Embedding(cfg.padded_vocab_size, cfg.hidden_size)
        self.positions = nn.Embedding(cfg.num_position_rows, cfg.hidden_size)
        self.token_types = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.ln = LayerNorm(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # fairseq utils.make_positions: cumulative count of non-pad tokens, offset past pad_id.
        not_pad = input_ids.ne(self.pad_id).int()
        positions = (torch.cumsum(not_pad, dim=1) * not_pad).long() + self.pad_id
        x = (F.embedding(input_ids, self.tokens.weight, padding_idx=self.pad_id)
             + F.embedding(positions, self.positions.weight, padding_idx=self.pad_id)
             + self.token_types.weight[0])      # RoBERTa has a single, all-zero token type
        return self.dropout(self.ln(x))


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.attention_dropout = cfg.attention_dropout
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)   # [q; k; v] rows
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                # each (B, heads, T, hd)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.attention_dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class Layer(nn.Module):
    """One post-LayerNorm transformer layer (BERT/RoBERTa)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.ln_attn = LayerNorm(cfg)
        self.up = nn.Linear(cfg.hidden_size, cfg.ffn_size)
        self.down = nn.Linear(cfg.ffn_size, cfg.hidden_size)
        self.ln_ffn = LayerNorm(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.ln_attn(x + self.dropout(self.attn(x, attn_mask)))
        return self.ln_ffn(x + self.dropout(self.down(F.gelu(self.up(x)))))


class LMHead(nn.Module):
    """dense -> GELU -> LN -> (decoder = token embedding, passed in) + bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.ln = LayerNorm(cfg)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))     # real vocab only
        # Logit offset for the padding rows of the decoder: -inf, so they are never predicted.
        self.register_buffer("pad_logit_bias",
                             torch.full((cfg.padded_vocab_size - cfg.vocab_size,), float("-inf")),
                             persistent=False)

    def forward(self, h: torch.Tensor, decoder_weight: torch.Tensor) -> torch.Tensor:
        h = self.ln(F.gelu(self.dense(h)))
        bias = torch.cat([self.bias, self.pad_logit_bias.to(self.bias.dtype)])
        return F.linear(h, decoder_weight, bias)                   # (..., padded_vocab)


class ClassificationHead(nn.Module):
    """Sentence-level head on <s> (HF RobertaClassificationHead)."""

    def __init__(self, cfg: ModelConfig, num_labels: int):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out_proj = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.dropout(hidden[:, 0])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class NSPHead(nn.Module):
    """BERT next-sentence head: pooler (dense + tanh on <s>) then 2-way linear."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.pooler(hidden[:, 0])))


class Roberta(nn.Module):
    """Encoder + tied MLM head (+ optional NSP head, + optional classification head)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.lm_head = LMHead(cfg)
        self.nsp_head = NSPHead(cfg) if cfg.nsp_head else None
        self.classifier = ClassificationHead(cfg, cfg.num_labels) if cfg.num_labels > 0 else None
        self.reset_parameters()

    # fairseq init_bert_params: N(0, 0.02) for Linear/Embedding weights, zero biases, zero
    # padding rows (pad_id of both embedding tables, and our internal vocab padding rows).
    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, std)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
        self.embed.tokens.weight[self.cfg.pad_id].zero_()
        self.embed.tokens.weight[self.cfg.vocab_size:].zero_()
        self.embed.positions.weight[self.cfg.pad_id].zero_()
        self.lm_head.bias.zero_()

    # ---- encoder ----
    def encode(self, input_ids: torch.Tensor,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, hidden). attention_mask: (B, T), nonzero/True = real token;
        pass None when the batch has no padding so SDPA can use the flash kernel."""
        attn_mask = None
        if attention_mask is not None:
            attn_mask = attention_mask.bool()[:, None, None, :]       # broadcast over heads, queries
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, attn_mask)
        return x

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM-head logits over the padded vocab (padding columns are -inf)."""
        return self.lm_head(hidden, self.embed.tokens.weight)

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Dense (B, T, vocab_size) logits at every position, as HF RobertaForMaskedLM returns."""
        return self.mlm_logits(self.encode(input_ids, attention_mask))[..., : self.cfg.vocab_size]

    def classify(self, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("model built without a classification head (num_labels=0)")
        return self.classifier(self.encode(input_ids, attention_mask))

    # ---- training forward: summed losses, so micro-batches can be normalised by the caller ----
    def forward(self, input_ids: torch.Tensor, mlm_positions: torch.Tensor,
                mlm_targets: torch.Tensor, attention_mask: torch.Tensor | None = None,
                nsp_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Returns {"mlm_loss_sum": summed CE (nats) over masked tokens[, "nsp_loss_sum"]}.

        mlm_positions: (N,) flat indices into B*T; mlm_targets: (N,) original ids, -100 for the
        bucket padding entries (ignored). N is bucketed by the masking code to avoid recompiles.
        """
        hidden = self.encode(input_ids, attention_mask)
        picked = hidden.reshape(-1, hidden.size(-1)).index_select(0, mlm_positions)
        if torch.compiler.is_compiling() or not torch.is_grad_enabled():
            logits = self.mlm_logits(picked)
            mlm = F.cross_entropy(logits.float(), mlm_targets, ignore_index=IGNORE_INDEX,
                                  reduction="sum")
        else:   # eager training: same value, fewer (N, vocab) buffers
            h = self.lm_head.ln(F.gelu(self.lm_head.dense(picked)))
            bias = torch.cat([self.lm_head.bias, self.lm_head.pad_logit_bias])
            mlm = LinearCrossEntropy.apply(h, self.embed.tokens.weight, bias, mlm_targets)
        out = {"mlm_loss_sum": mlm}
        if nsp_labels is not None:
            if self.nsp_head is None:
                raise RuntimeError("nsp_labels given but the model has no NSP head (nsp_head=False)")
            out["nsp_loss_sum"] = F.cross_entropy(self.nsp_head(hidden).float(), nsp_labels,
                                                  reduction="sum")
        return out

    def num_params(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.embed.tokens.weight.numel() + self.embed.positions.weight.numel()
        return n


def build_model(cfg: ModelConfig, device: torch.device | str | None = None,
                seed: int | None = None) -> Roberta:
    """Build and initialise a model (deterministically when `seed` is given)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Roberta(cfg)
    else:
        model = Roberta(cfg)
    return model.to(device) if device is not None else model


__all__ = ["Roberta", "build_model", "LayerNorm", "Embeddings", "Layer", "SelfAttention",
           "LMHead", "ClassificationHead", "NSPHead"]
