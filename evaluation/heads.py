"""Task models: a pretrained `Roberta` encoder (from `training.hf_io.load_hf`) plus a head.
Composition only -- the encoder is used through `Roberta.encode`, its MLM head is frozen out.

  SequenceHead       <s> -> dropout -> dense -> tanh -> dropout -> out_proj   (fairseq
                     RobertaClassificationHead / HF RobertaClassificationHead): GLUE
                     classification (num_outputs = classes) and regression (1 output)
  MultipleChoiceModel the same head with one output per (passage, question+option) row;
                     the scores of a question's options go through a softmax (RACE, §5.3)
  SpanModel          start/end logits from one linear layer over every token (BERT SQuAD);
                     for SQuAD 2.0 also the paper's answerability classifier, a SequenceHead
                     with 2 outputs on <s>, trained jointly (losses summed, §5.2)

`pooler_dropout` defaults to fairseq's 0.0 (HF uses hidden_dropout, 0.1).
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.hf_io import load_hf
from training.model import Roberta


class SequenceHead(nn.Module):
    def __init__(self, hidden: int, num_outputs: int, pooler_dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(pooler_dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, num_outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout(features[:, 0])               # the <s> token
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


def _init_like_bert(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


class _TaskModel(nn.Module):
    def __init__(self, encoder: Roberta):
        super().__init__()
        self.encoder = encoder
        # Only the encoder proper is finetuned: the MLM / NSP / stored classifier heads get no
        # gradient, so keep them out of the optimizer (and out of weight decay).
        for name, p in encoder.named_parameters():
            if name.startswith(("lm_head.", "nsp_head.", "classifier.")):
                p.requires_grad_(False)

    @property
    def pad_id(self) -> int:
        return self.encoder.cfg.pad_id

    def features(self, input_ids, attention_mask):
        return self.encoder.encode(input_ids, attention_mask)


class SequenceModel(_TaskModel):
    """Classification (cross-entropy) or regression (num_outputs=1, mean squared error)."""

    def __init__(self, encoder: Roberta, num_outputs: int, pooler_dropout: float = 0.0):
        super().__init__(encoder)
        self.head = SequenceHead(encoder.cfg.hidden_size, num_outputs, pooler_dropout)
        _init_like_bert(self.head, encoder.cfg.init_std)
        self.regression = num_outputs == 1

    def forward(self, input_ids, attention_mask=None):
        return self.head(self.features(input_ids, attention_mask))

    def loss(self, logits, labels):
        if self.regression:
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        return F.cross_entropy(logits.float(), labels)


class MultipleChoiceModel(_TaskModel):
    def __init__(self, encoder: Roberta, pooler_dropout: float = 0.0):
        super().__init__(encoder)
        self.head = SequenceHead(encoder.cfg.hidden_size, 1, pooler_dropout)
        _init_like_bert(self.head, encoder.cfg.init_std)

    def forward(self, input_ids, attention_mask=None):
        """input_ids: (B, options, T) -> (B, options) scores."""
        B, K, T = input_ids.shape
        flat_mask = None if attention_mask is None else attention_mask.reshape(B * K, T)
        scores = self.head(self.features(input_ids.reshape(B * K, T), flat_mask))
        return scores.view(B, K)

    def loss(self, logits, labels):
        return F.cross_entropy(logits.float(), labels)


class SpanModel(_TaskModel):
    def __init__(self, encoder: Roberta, answerability: bool, pooler_dropout: float = 0.0):
        super().__init__(encoder)
        self.qa_outputs = nn.Linear(encoder.cfg.hidden_size, 2)
        self.answerable = (SequenceHead(encoder.cfg.hidden_size, 2, pooler_dropout)
                           if answerability else None)
        for m in (self.qa_outputs, self.answerable):
            if m is not None:
                _init_like_bert(m, encoder.cfg.init_std)

    def forward(self, input_ids, attention_mask=None):
        """-> dict(start, end: (B, T) logits, padding at -inf; answerable: (B, 2) or None)."""
        h = self.features(input_ids, attention_mask)
        start, end = self.qa_outputs(h).float().unbind(-1)
        if attention_mask is not None:
            pad = ~attention_mask.bool()
            start, end = start.masked_fill(pad, float("-inf")), end.masked_fill(pad, float("-inf"))
        return {"start": start, "end": end,
                "answerable": self.answerable(h) if self.answerable is not None else None}

    def loss(self, out, labels):
        """labels: dict(start, end, has_answer). Span loss = mean of start and end CE (targets
        <s> where the window lacks the answer, BERT's scheme); + answerability CE (SQuAD 2.0)."""
        span = (F.cross_entropy(out["start"], labels["start"])
                + F.cross_entropy(out["end"], labels["end"])) / 2
        if out["answerable"] is None:
            return span
        return span + F.cross_entropy(out["answerable"].float(), labels["has_answer"].long())


def load_encoder(model_dir: str | os.PathLike) -> Roberta:
    """Any RoBERTa checkpoint directory in HF layout (a `pretrain` checkpoint, our export, or a
    published HF model such as roberta-base)."""
    return load_hf(model_dir)


__all__ = ["SequenceHead", "SequenceModel", "MultipleChoiceModel", "SpanModel", "load_encoder"]
