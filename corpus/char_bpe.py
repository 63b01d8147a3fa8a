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

import json
import os
import time

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from corpus import bpe

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
    fs, parts = bpe.list_documents(root)
    if not parts:
        raise ValueError(f"empty corpus: no part-*.parquet under {root}/corpus/documents")
    params = {"mode": "trained", "kind": KIND, "requested_vocab_size": vocab_size,
              "min_frequency": min_frequency, "limit_alphabet": limit_alphabet,
              "sample_fraction": sample_fraction, "seed": seed,
              "inputs": [[p.rsplit("/", 1)[1], fs.get_file_info(p).size] for p in parts]}
    old = bpe.load_info(root)
    if old and not overwrite and old.get("params") == params:
        return old
    stats = {"documents": 0, "chars": 0, "skipped_empty": 0, "skipped_invalid_utf8": 0}
    tok = Tokenizer(models.BPE(unk_token=bpe.UNK, continuing_subword_prefix=SUBWORD_PREFIX))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, min_frequency=min_frequency, show_progress=False,
        special_tokens=bpe.LEADING_SPECIALS, limit_alphabet=limit_alphabet,
        continuing_subword_prefix=SUBWORD_PREFIX)
    t0 = time.perf_counter()
    tok.train_from_iterator(bpe._training_texts(fs, parts, sample_fraction, seed, batch_size,
                                                stats, progress), trainer)
    seconds = time.perf_counter() - t0
    if stats["documents"] == 0:
        raise ValueError(f"empty corpus: no non-empty documents under {root}/corpus/documents")
    tok.add_special_tokens([AddedToken(bpe.MASK, lstrip=True, rstrip=False, normalized=False,
                                       special=True)])
    tok = _configure(tok)
    bpe._check_specials(tok, "character-level tokenizer")
    return _save(root, tok, {"params": params, "corpus_parts": len(parts),
                             "train_seconds": round(seconds, 3), **stats})


def _save(root, tok: Tokenizer, info: dict) -> dict:
    fs, base = bpe.resolve(root)
    d = bpe.join(base, bpe.TOKENIZER_DIR)
    vocab = bpe.full_vocab(tok)
    info = dict(info, kind=KIND, vocab_size=len(vocab), mask_id=vocab[bpe.MASK],
                bos_id=bpe.BOS_ID, pad_id=bpe.PAD_ID, eos_id=bpe.EOS_ID, unk_id=bpe.UNK_ID,
                tokenizer_sha256=bpe.tokenizer_sha256(tok), version=bpe.INFO_VERSION,
                files=["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                       "special_tokens_map.json"])
    if bpe.exists(fs, bpe.join(d, bpe.INFO_FILE)):
        fs.delete_file(bpe.join(d, bpe.INFO_FILE))
    bpe.write_bytes_atomic(fs, bpe.join(d, "tokenizer.json"), tok.to_str(pretty=True).encode())
    bpe.write_bytes_atomic(fs, bpe.join(d, "vocab.json"), json.dumps(
        dict(sorted(vocab.items(), key=lambda kv: kv[1])), ensure_ascii=False).encode())
    bpe.write_bytes_atomic(fs, bpe.join(d, "merges.txt"), (
        "#version: 0.2\n" + "\n".join(bpe.model_merges(tok)) + "\n").encode())
    specials = {"bos_token": bpe.BOS, "eos_token": bpe.EOS, "sep_token": bpe.EOS,
                "cls_token": bpe.BOS, "unk_token": bpe.UNK, "pad_token": bpe.PAD,
                "mask_token": bpe.MASK}
    bpe.write_json_atomic(fs, bpe.join(d, "special_tokens_map.json"), specials)
    bpe.write_json_atomic(fs, bpe.join(d, "tokenizer_config.json"),
                          dict(specials, tokenizer_class="PreTrainedTokenizerFast",
                               model_max_length=512))
    bpe.write_json_atomic(fs, bpe.join(d, bpe.INFO_FILE), info)
    return info


__all__ = ["train_char_tokenizer", "DEFAULT_VOCAB_SIZE", "SUBWORD_PREFIX"]
