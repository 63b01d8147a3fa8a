"""Examples -> token ids, in fairseq's input formats (fairseq_recipe.md §2.3, §5.3):

  sentence         <s> A </s>
  pair             <s> A </s></s> B </s>          (longest segment truncated first)
  SQuAD window     <s> question </s></s> context-window </s>   (doc-stride windows; each
                   context token keeps its character offsets to map a span back to text)
  RACE option      <s> passage </s></s> question+option </s>   (question+option cut to 128
                   tokens, then the passage cut so the total fits; a cloze question with "_"
                   has the option put in the blank, as fairseq's preprocess_RACE.py does)

Segments are byte-level BPE'd without special tokens and assembled here, so any RoBERTa
tokenizer (ours, or an HF `tokenizer.json` / `vocab.json`+`merges.txt`) gives the same layout.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

BOS, PAD, EOS = 0, 1, 2


def load_tokenizer(model_dir: str | os.PathLike) -> Tokenizer:
    """The tokenizer saved with a checkpoint (`tokenizer.json`, else `vocab.json` +
    `merges.txt`). Checks the RoBERTa special ids <s>=0 <pad>=1 </s>=2."""
    d = Path(model_dir)
    if (d / "tokenizer.json").is_file():
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    elif (d / "vocab.json").is_file() and (d / "merges.txt").is_file():
        from corpus.bpe import read_merges, tokenizer_from_vocab_merges
        tok = tokenizer_from_vocab_merges(json.loads((d / "vocab.json").read_text()),
                                          read_merges((d / "merges.txt").read_text()), str(d))
    else:
        raise FileNotFoundError(f"{d}: no tokenizer.json or vocab.json + merges.txt")
    for name, want in (("<s>", BOS), ("<pad>", PAD), ("</s>", EOS)):
        if tok.token_to_id(name) != want:
            raise ValueError(f"{d}: tokenizer has {name}={tok.token_to_id(name)}, RoBERTa needs {want}")
    tok.no_truncation()
    tok.no_padding()
    return tok


def _ids(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Longest-first truncation (one token at a time from the longer segment's end)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def encode_texts(tok: Tokenizer, text_a: list[str], text_b: list[str | None] | None,
                 max_len: int) -> list[list[int]]:
    """Sentence or sentence-pair inputs, each at most `max_len` ids."""
    ids_a = _ids(tok, text_a)
    if text_b is None or all(b is None for b in text_b):
        return [[BOS] + a[: max_len - 2] + [EOS] for a in ids_a]
    ids_b = _ids(tok, [b or "" for b in text_b])
    out = []
    for a, b in zip(ids_a, ids_b):
        a, b = _truncate_pair(a, b, max_len - 4)
        out.append([BOS] + a + [EOS, EOS] + b + [EOS])
    return out


def _cloze(question: str, option: str) -> str:
    return question.replace("_", option) if "_" in question else f"{question} {option}"


def encode_choices(tok: Tokenizer, examples, max_len: int, max_option_len: int = 128
                   ) -> list[list[list[int]]]:
    """RACE: for each example, one id list per option."""
    articles = _ids(tok, [ex.article for ex in examples])
    qas = _ids(tok, [_cloze(ex.question, o) for ex in examples for o in ex.options])
    out, k = [], 0
    for ex, art in zip(examples, articles):
        rows = []
        for _ in ex.options:
            qa = qas[k][:max_option_len]
            k += 1
            rows.append([BOS] + art[: max(0, max_len - len(qa) - 4)] + [EOS, EOS] + qa + [EOS])
        out.append(rows)
    return out


# --------------------------------------------------------------------------------------------
# SQuAD windows
# --------------------------------------------------------------------------------------------

@dataclass
class SpanWindow:
    example_index: int
    input_ids: list[int]
    context_start: int                    # index of the first context token in input_ids
    offsets: list[tuple[int, int]]        # char span in the context of each context token
    start: int = 0                        # answer token positions in input_ids (0 = <s>:
    end: int = 0                          #   the answer is not inside this window)
    has_answer: bool = False


def _answer_tokens(offsets, char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last context token overlapping [char_start, char_end), or None."""
    s = e = None
    for i, (a, b) in enumerate(offsets):
        if b > char_start and a < char_end:
            if s is None:
                s = i
            e = i
    return None if s is None else (s, e)


def encode_squad(tok: Tokenizer, examples, max_len: int = 512, doc_stride: int = 128,
                 max_query_len: int = 64) -> list[SpanWindow]:
    """Doc-stride windows over each context (BERT's scheme: windows start every `doc_stride`
    context tokens until one reaches the end). Training targets: the first gold answer's
    token span when it lies wholly inside the window, else (0, 0) pointing at <s>."""
    qs = _ids(tok, [ex.question for ex in examples])
    ctx_enc = tok.encode_batch([ex.context for ex in examples], add_special_tokens=False)
    windows = []
    for i, (ex, q, ce) in enumerate(zip(examples, qs, ctx_enc)):
        q = q[:max_query_len]
        room = max_len - len(q) - 4
        if room < 1:
            raise ValueError(f"max_len {max_len} leaves no room for the context")
        ids, offs = ce.ids, ce.offsets
        gold = None
        if ex.answers and not ex.is_impossible:
            a = ex.answers[0]
            gold = _answer_tokens(offs, a["answer_start"], a["answer_start"] + len(a["text"]))
        begin = 0
        while True:
            end = min(begin + room, len(ids))
            w = SpanWindow(i, [BOS] + q + [EOS, EOS] + ids[begin:end] + [EOS],
                           context_start=len(q) + 3, offsets=list(offs[begin:end]))
            if gold is not None and begin <= gold[0] and gold[1] < end:
                w.start = gold[0] - begin + w.context_start
                w.end = gold[1] - begin + w.context_start
                w.has_answer = True
            windows.append(w)
            if end >= len(ids):
                break
            begin += min(doc_stride, room)
    return windows


__all__ = ["load_tokenizer", "encode_texts", "encode_choices", "encode_squad", "SpanWindow"]
