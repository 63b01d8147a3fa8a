"""Character-level BPE: the encoding RoBERTa's Section 4.4 compares against its byte-level BPE.

BERT's original vocabulary (30K) is a subword vocabulary over *unicode characters*: text is
first split on whitespace and punctuation, merges are learnt between characters, and a
character never seen in training (or beyond the alphabet limit) becomes `<unk>`: there is no
byte fallback. The `tokenizers` library builds exactly that with its BPE model, the BERT
pre-tokenizer (whitespace + punctuation split) and an unk token. Word-internal pieces carry
BERT's `##` prefix so that decoding can restore word boundaries.

Written to `<root>/tokenizer/` in the same layout as `corpus.bpe` (tokenizer.json first,
`tokenizer_info.json` last) with the same RoBERTa ids (`<s>`=0, `<pad>`=1, `</s>`=2,
`<unk>`=3, `<mask>`=last), so shard-corpus, pretrain and finetune-eval take it unchanged;
only `tokenizer.json` describes it fully (vocab.json/merges.txt are written for inspection,
and `tokenizer_config.json` names `PreTrainedTokenizerFast`, not the byte-level
`RobertaTokenizer`).
"""
from __future__ import annotations

import os

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from corpus import bpe
from corpus.documents import list_documents, part_sizes

SUBWORD_PREFIX = "##"
DEFAULT_VOCAB_SIZE = 30000          # BERT's vocabulary (paper §4.4)
KIND = "char-bpe"


def _configure(tok: Tokenizer) -> Tokenizer:
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=SUBWORD_PREFIX)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bpe.BOS} $A {bpe.EOS}", pair=f"{bpe.BOS} $A {bpe.EOS} {bpe.EOS} $B {bpe.EOS}",
        special_tokens=[(bpe.BOS, bpe.BOS_ID), (bpe.EOS, bpe.EOS_ID)])
    return tok


def train_char_tokenizer(root: str | os.PathLike, vocab_size: int = DEFAULT_VOCAB_SIZE,
                         min_frequency: int = 2, limit_alphabet: int | None = None,
                         sample_fraction: float = 1.0, seed: int = 0, batch_size: int = 1000,
                         overwrite: bool = False, progress: bpe.Progress | None = None) -> dict:
    """Train a character-level BPE on `<root>/corpus/documents`, write `<root>/tokenizer/`.

    `limit_alphabet`: keep at most this many distinct characters (the rest become `<unk>`);
    default min(1000, vocab_size // 2), so merges keep most of the vocabulary even on a
    corpus with many scripts. Skips the work when the same tokenizer exists, unless
    `overwrite`. Returns the info dict (also `tokenizer_info.json`).
    """
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    if vocab_size < 64:
        raise ValueError(f"vocab_size {vocab_size} is too small for a character-level BPE")
    limit_alphabet = limit_alphabet or min(1000, vocab_size // 2)
    fs, parts = list_documents(root)
    params = {"mode": "trained", "kind": KIND, "requested_vocab_size": vocab_size,
              "min_frequency": min_frequency, "limit_alphabet": limit_alphabet,
              "sample_fraction": sample_fraction, "seed": seed, "inputs": part_sizes(fs, parts)}
    old = bpe.load_info(root)
    if old and not overwrite and old.get("params") == params:
        return old
    tok = Tokenizer(models.BPE(unk_token=bpe.UNK, continuing_subword_prefix=SUBWORD_PREFIX))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, min_frequency=min_frequency, show_progress=False,
        special_tokens=bpe.LEADING_SPECIALS, limit_alphabet=limit_alphabet,
        continuing_subword_prefix=SUBWORD_PREFIX)
    info = bpe.train_on_corpus(root, tok, trainer, fs, parts, params, sample_fraction, seed,
                               batch_size, progress)
    tok.add_special_tokens([AddedToken(bpe.MASK, lstrip=True, rstrip=False, normalized=False,
                                       special=True)])
    tok = _configure(tok)
    bpe.check_specials(tok, "character-level tokenizer")
    # tokenizer.json describes it fully; not the byte-level class of roberta-base.
    return bpe.save_tokenizer(root, tok, dict(info, kind=KIND),
                              {"tokenizer_class": "PreTrainedTokenizerFast",
                               "model_max_length": 512})


__all__ = ["train_char_tokenizer", "DEFAULT_VOCAB_SIZE", "SUBWORD_PREFIX"]
