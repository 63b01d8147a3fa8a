"""Per task type: how examples become tensors, which head is built, how a dev split is scored.
`finetune.py` runs one loop over any of these three.

Each adapter has
    features(examples) -> list of feature items (one per training row)
    collate(items)     -> (inputs: dict of tensors, labels)   dynamic padding to the batch max
    build_model(encoder)
    evaluate(model, split, examples, device, batch_size) -> (metrics in percent, the split's
                       prediction files: evaluation/predictions.py)

`forward_batch` runs the model on one collated batch, for training and dev scoring alike.
"""
from __future__ import annotations

import torch

from evaluation.encoding import PAD, encode_choices, encode_squad, encode_texts
from evaluation.heads import MultipleChoiceModel, SequenceModel, SpanModel
from evaluation.metrics import squad_scores, task_metrics
from evaluation.predictions import labelled_records, squad_files
from evaluation.span_decode import answerable_probs, decode_predictions
from evaluation.stopping import check_stop
from evaluation.tasks import CHOICE, REGRESSION, SPAN, TaskSpec
from training.step import autocast_for, batch_to_device

STSB_SCALE = 5.0     # fairseq divides STS-B scores by 5 into [0, 1] (preprocess_GLUE_tasks.sh)


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return ids, ids.ne(PAD)


def forward_batch(model, inputs: dict, device):
    """The model's output on collated `inputs`, moved to `device`, under the training step's
    autocast (bf16 on CUDA, float32 elsewhere): finetuning and dev scoring run the same way."""
    with autocast_for(device):
        return model(**batch_to_device(inputs, device))


def _outputs_in_batches(adapter, model, items: list, device, batch_size: int):
    """(batch, model output) for each run of `batch_size` consecutive `items`, in order; a
    stop request ends it between batches (a large dev set takes minutes on a CPU)."""
    for i in range(0, len(items), batch_size):
        check_stop("dev scoring")
        batch = items[i:i + batch_size]
        inputs, _ = adapter.collate(batch)
        yield batch, forward_batch(model, inputs, device)


class TextClassificationData:
    """GLUE: single sentences, pairs, and STS-B regression."""

    def __init__(self, spec: TaskSpec, tok, max_len: int, pooler_dropout: float = 0.0, **_):
        self.spec, self.tok, self.max_len, self.pooler_dropout = spec, tok, max_len, pooler_dropout
        self.regression = spec.type == REGRESSION

    def features(self, examples):
        ids = encode_texts(self.tok, [e.text_a for e in examples],
                           [e.text_b for e in examples], self.max_len)
        scale = STSB_SCALE if self.regression else 1
        return [(x, e.label / scale if self.regression else e.label) for x, e in zip(ids, examples)]

    def collate(self, items):
        ids, mask = _pad([x for x, _ in items])
        dtype = torch.float32 if self.regression else torch.long
        return {"input_ids": ids, "attention_mask": mask}, torch.tensor([y for _, y in items], dtype=dtype)

    def build_model(self, encoder):
        return SequenceModel(encoder, self.spec.num_labels, self.pooler_dropout)

    @torch.no_grad()
    def predict(self, model, items, device, batch_size):
        out = []
        for _, logits in _outputs_in_batches(self, model, items, device, batch_size):
            logits = logits.float().cpu()
            out.append(logits.squeeze(-1) * STSB_SCALE if self.regression else logits.argmax(-1))
        return torch.cat(out).numpy()

    def evaluate(self, model, split, examples, device, batch_size):
        preds = self.predict(model, self.features(examples), device, batch_size)
        metrics = task_metrics(self.spec, preds, [e.label for e in examples], split=split)
        return metrics, labelled_records(self.spec, examples, preds)


class MultipleChoiceData:
    """RACE: each option with the question and the passage, softmax across options."""

    def __init__(self, spec: TaskSpec, tok, max_len: int, max_option_len: int = 128,
                 pooler_dropout: float = 0.0, **_):
        self.spec, self.tok, self.max_len = spec, tok, max_len
        self.max_option_len, self.pooler_dropout = max_option_len, pooler_dropout

    def features(self, examples):
        rows = encode_choices(self.tok, examples, self.max_len, self.max_option_len)
        return [(r, e.label) for r, e in zip(rows, examples)]

    def collate(self, items):
        flat = [row for rows, _ in items for row in rows]
        ids, mask = _pad(flat)
        K = len(items[0][0])
        B = len(items)
        return ({"input_ids": ids.view(B, K, -1), "attention_mask": mask.view(B, K, -1)},
                torch.tensor([y for _, y in items], dtype=torch.long))

    def build_model(self, encoder):
        return MultipleChoiceModel(encoder, self.pooler_dropout)

    @torch.no_grad()
    def evaluate(self, model, split, examples, device, batch_size):
        items = self.features(examples)
        preds = [scores.float().argmax(-1).cpu()
                 for _, scores in _outputs_in_batches(self, model, items, device, batch_size)]
        preds = torch.cat(preds).numpy()
        metrics = task_metrics(self.spec, preds, [e.label for e in examples], split=split,
                               levels=[e.level for e in examples])
        return metrics, labelled_records(self.spec, examples, preds)


class SpanData:
    """SQuAD 1.1 / 2.0: doc-stride windows, start/end logits, answerability for 2.0."""

    def __init__(self, spec: TaskSpec, tok, max_len: int, doc_stride: int = 128,
                 max_query_len: int = 64, pooler_dropout: float = 0.0, **_):
        self.spec, self.tok, self.max_len = spec, tok, max_len
        self.doc_stride, self.max_query_len = doc_stride, max_query_len
        self.pooler_dropout = pooler_dropout
        self.answerability = spec.squad_version == 2

    def windows(self, examples):
        return encode_squad(self.tok, examples, self.max_len, self.doc_stride, self.max_query_len)

    def features(self, examples):
        return self.windows(examples)

    def collate(self, items):
        ids, mask = _pad([w.input_ids for w in items])
        labels = {"start": torch.tensor([w.start for w in items]),
                  "end": torch.tensor([w.end for w in items]),
                  "has_answer": torch.tensor([w.has_answer for w in items])}
        return {"input_ids": ids, "attention_mask": mask}, labels

    def build_model(self, encoder):
        return SpanModel(encoder, self.answerability, self.pooler_dropout)

    @torch.no_grad()
    def predict(self, model, examples, device, batch_size
                ) -> tuple[dict[str, str], dict[str, float] | None]:
        """({question id: answer}, {question id: P(answerable)} for SQuAD 2.0, else None)."""
        windows = self.windows(examples)
        starts, ends, probs = [], [], []
        for batch, out in _outputs_in_batches(self, model, windows, device, batch_size):
            s, e = out["start"].float().cpu().numpy(), out["end"].float().cpu().numpy()
            for j, w in enumerate(batch):
                starts.append(s[j, : len(w.input_ids)])
                ends.append(e[j, : len(w.input_ids)])
            if out["answerable"] is not None:
                probs.extend(torch.softmax(out["answerable"].float(), -1)[:, 1].cpu().tolist())
        probs = probs if self.answerability else None
        answers = decode_predictions(examples, windows, starts, ends, probs)
        return answers, None if probs is None else answerable_probs(examples, windows, probs)

    def evaluate(self, model, split, examples, device, batch_size):
        answers, answerable = self.predict(model, examples, device, batch_size)
        scores = squad_scores(examples, answers)
        metrics = {k: v for k, v in scores.items() if k != "total" and not k.endswith("_total")}
        return metrics, squad_files(answers, answerable)


def adapter_for(spec: TaskSpec, tok, max_len: int, **options):
    cls = {SPAN: SpanData, CHOICE: MultipleChoiceData}.get(spec.type, TextClassificationData)
    return cls(spec, tok, max_len, **options)


def labels_to(labels, device):
    if isinstance(labels, dict):
        return {k: v.to(device) for k, v in labels.items()}
    return labels.to(device)


__all__ = ["adapter_for", "forward_batch", "TextClassificationData", "MultipleChoiceData",
           "SpanData", "labels_to", "STSB_SCALE"]
