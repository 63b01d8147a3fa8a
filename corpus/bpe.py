"""Byte-level BPE for RoBERTa: train from the Parquet corpus, or adopt existing files.

Layout written under `<root>/tokenizer/` (each file atomically, `tokenizer_info.json` last):

    tokenizer.json            the `tokenizers` pipeline (what `load_tokenizer` reads)
    vocab.json + merges.txt   the GPT-2/RoBERTa pair (what `RobertaTokenizerFast` reads)
    tokenizer_config.json     + special_tokens_map.json, so `from_pretrained(dir)` works
    tokenizer_info.json       parameters, actual vocabulary size, sha256 of tokenizer.json

Ids follow fairseq/RoBERTa: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>`=last. The
`tokenizers` trainer puts special tokens first, so the trainer gets the first four and a
vocabulary one smaller; `<mask>` is appended afterwards (fairseq adds it the same way, last,
in `MaskedLMTask`). On a small corpus the trainer may find fewer merges than asked: then
`<mask>` is the last id of the vocabulary it did produce, and `vocab_size` in the info is the
actual size.

Byte-level pre-tokenization without a prefix space, exactly like `roberta-base`
(`add_prefix_space=False`); post-processor `<s> A </s>` / `<s> A </s></s> B </s>`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from typing import Callable, Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from runroot import layout, storage
from corpus.documents import iter_document_batches, list_documents, part_sizes
from corpus.mixture import DEFAULT_SOURCE, copies, parse_mix, warn_unseen_sources
from corpus.sampling import unit_hash

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
LEADING_SPECIALS = [BOS, PAD, EOS, UNK]  # ids 0..3, RoBERTa order
BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
DEFAULT_VOCAB_SIZE = 50265
INFO_VERSION = 1
# The files of a tokenizer directory besides the info file, which is written last.
TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json"]
SPECIAL_TOKENS_MAP = {"bos_token": BOS, "eos_token": EOS, "sep_token": EOS, "cls_token": BOS,
                      "unk_token": UNK, "pad_token": PAD, "mask_token": MASK}
# tokenizer_config.json besides the specials: `from_pretrained(dir)` gives roberta-base's class.
ROBERTA_TOKENIZER_CONFIG = {"tokenizer_class": "RobertaTokenizer", "add_prefix_space": False,
                            "trim_offsets": True, "errors": "replace", "model_max_length": 512}

Progress = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): called from the library, never required."""


# ---------------------------------------------------------------- building tokenizers

def _configure(tok: Tokenizer) -> Tokenizer:
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        (EOS, EOS_ID), (BOS, BOS_ID), trim_offsets=True, add_prefix_space=False)
    return tok


def _append_mask(tok: Tokenizer) -> Tokenizer:
    """Add `<mask>` as the last id, then the post-processor (which needs final ids)."""
    # lstrip like roberta-base: "a <mask>" masks the word with its leading space.
    tok.add_special_tokens([AddedToken(MASK, lstrip=True, rstrip=False, normalized=False,
                                       special=True)])
    mask_id = tok.token_to_id(MASK)
    if mask_id != tok.get_vocab_size(with_added_tokens=True) - 1:
        raise RuntimeError(f"<mask> got id {mask_id}, expected the last id")
    return _configure(tok)


def check_specials(tok: Tokenizer, where: str) -> None:
    for i, t in enumerate(LEADING_SPECIALS):
        if tok.token_to_id(t) != i:
            raise ValueError(f"{where}: {t} has id {tok.token_to_id(t)}, RoBERTa needs {i}")
    last = tok.get_vocab_size(with_added_tokens=True) - 1
    if tok.token_to_id(MASK) != last:
        raise ValueError(f"{where}: <mask> has id {tok.token_to_id(MASK)}, "
                         f"RoBERTa needs the last id {last}")


def tokenizer_from_vocab_merges(vocab: dict[str, int], merges: list[tuple[str, str]],
                                where: str = "vocab/merges") -> Tokenizer:
    """A RoBERTa tokenizer from a GPT-2 style vocab + merges.

    A RoBERTa vocabulary (specials at 0..3 and `<mask>` last) is kept as is. A vocabulary
    without them (GPT-2's own) is re-numbered: the four specials first, then the original
    tokens in their original id order, then `<mask>`; tokenization is unchanged, ids shift
    by 4 (fairseq did its own re-numbering too, via dict.txt).
    """
    present = [t for t in LEADING_SPECIALS + [MASK] if t in vocab]
    if present and len(present) != 5:
        raise ValueError(f"{where}: has some RoBERTa special tokens ({present}) but not all five")
    if not present:
        ordered = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        vocab = {t: i for i, t in enumerate(LEADING_SPECIALS + ordered)}
        vocab[MASK] = len(vocab)
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"{where}: vocabulary ids are not 0..{len(vocab) - 1} without gaps")
    mask_id = vocab.pop(MASK)
    if mask_id != len(vocab):
        raise ValueError(f"{where}: <mask> has id {mask_id}, RoBERTa needs the last id {len(vocab)}")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None))
    tok.add_special_tokens(LEADING_SPECIALS)
    tok = _append_mask(tok)
    check_specials(tok, where)
    return tok


def read_merges(text: str) -> list[tuple[str, str]]:
    merges = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#version"):
            continue
        a, b = line.split(" ")
        merges.append((a, b))
    return merges


def full_vocab(tok: Tokenizer) -> dict[str, int]:
    """Model vocabulary plus added tokens (`<mask>`), as in RoBERTa's vocab.json."""
    return tok.get_vocab(with_added_tokens=True)


def model_merges(tok: Tokenizer) -> list[str]:
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def tokenizer_sha256(tok: Tokenizer) -> str:
    return hashlib.sha256(tok.to_str().encode()).hexdigest()


def vocabulary_sha256(tok: Tokenizer) -> str:
    """sha256 of what vocab.json + merges.txt say (every token with its id, the merges in
    order), whatever the files' formatting or the rest of tokenizer.json: equal for a
    tokenizer and its adoption by `use_existing_tokenizer`, so a run root's tokenizer can be
    compared with a checkpoint's."""
    vocab = sorted(full_vocab(tok).items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps([vocab, model_merges(tok)]).encode()).hexdigest()


def save_tokenizer(root: str | os.PathLike, tok: Tokenizer, info: dict,
                   tokenizer_config: dict) -> dict:
    """Write `tok` to `<root>/tokenizer/` (each file atomically, the info file last) and
    return the info written: `info` plus the ids, the vocabulary size and the sha256 of
    tokenizer.json. `tokenizer_config`: what tokenizer_config.json says besides the specials
    (which class `transformers` loads the directory with)."""
    fs, base = storage.resolve(root)
    d = storage.join(base, layout.TOKENIZER)
    info_file = storage.join(base, layout.TOKENIZER_INFO)
    vocab = full_vocab(tok)
    info = dict(info, vocab_size=len(vocab), mask_id=vocab[MASK], bos_id=BOS_ID, pad_id=PAD_ID,
                eos_id=EOS_ID, unk_id=UNK_ID, tokenizer_sha256=tokenizer_sha256(tok),
                version=INFO_VERSION, files=list(TOKENIZER_FILES))
    # A stale info file must not vouch for new files while they are being replaced.
    if storage.exists(fs, info_file):
        fs.delete_file(info_file)
    storage.write_text_atomic(fs, storage.join(d, "tokenizer.json"), tok.to_str(pretty=True))
    storage.write_text_atomic(fs, storage.join(d, "vocab.json"), json.dumps(
        dict(sorted(vocab.items(), key=lambda kv: kv[1])), ensure_ascii=False))
    storage.write_text_atomic(fs, storage.join(d, "merges.txt"),
                              "#version: 0.2\n" + "\n".join(model_merges(tok)) + "\n")
    storage.write_json_atomic(fs, storage.join(d, "special_tokens_map.json"), SPECIAL_TOKENS_MAP)
    storage.write_json_atomic(fs, storage.join(d, "tokenizer_config.json"),
                              dict(SPECIAL_TOKENS_MAP, **tokenizer_config))
    storage.write_json_atomic(fs, info_file, info)
    return info


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Our tokenizer from a run root (`<root>/tokenizer/`) or a tokenizer directory."""
    fs, base = storage.resolve(path)
    for cand in (storage.join(base, layout.TOKENIZER, "tokenizer.json"),
                 storage.join(base, "tokenizer.json")):
        if storage.exists(fs, cand):
            try:
                tok = Tokenizer.from_str(storage.read_bytes(fs, cand).decode())
            except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
                raise ValueError(f"{cand} is not a readable tokenizer ({e}); rerun "
                                 "train-tokenizer (it rebuilds a damaged tokenizer)") from e
            check_specials(tok, cand)
            return tok
    raise FileNotFoundError(f"no tokenizer.json under {base} or "
                            f"{storage.join(base, layout.TOKENIZER)}: run train-tokenizer first")


def tokenizer_damage(root: str | os.PathLike, info: dict) -> str | None:
    """Why the files that `info` describes cannot be trusted any more, or None: the info file
    says a tokenizer was written, only the files say it still is."""
    fs, base = storage.resolve(root)
    d = storage.join(base, layout.TOKENIZER)
    missing = [f for f in info.get("files", ["tokenizer.json"])
               if not storage.exists(fs, storage.join(d, f))]
    if missing:
        return f"{', '.join(missing)} missing under {d}"
    try:
        tok = load_tokenizer(root)
    except ValueError as e:
        return str(e)
    if tokenizer_sha256(tok) != info.get("tokenizer_sha256"):
        return (f"{storage.join(d, 'tokenizer.json')} is not the tokenizer "
                f"{storage.join(base, layout.TOKENIZER_INFO)} records")
    return None


def load_info(root: str | os.PathLike) -> dict | None:
    fs, base = storage.resolve(root)
    p = storage.join(base, layout.TOKENIZER_INFO)
    return storage.read_json(fs, p) if storage.exists(fs, p) else None


# ---------------------------------------------------------------- training on the corpus
# (shared with corpus.char_bpe)

def training_texts(fs, parts, sample_fraction: float, seed: int, batch_size: int,
                   stats: dict, progress: Progress | None,
                   mix: dict[str, float] | None = None) -> Iterable[list[str]]:
    """Texts for the trainer. With a mixture (corpus.mixture), a sampled document is fed
    as many times as its source's weight says (chars_by_source counts every copy)."""
    salt = f"tok-sample-{seed}"
    for i, part in enumerate(parts):
        for batch in iter_document_batches(fs, part, batch_size, optional=("corpus_name",)):
            texts = []
            for doc_id, text, source in zip(batch["doc_id"], batch["text"], batch["corpus_name"]):
                if text is None:
                    stats["skipped_invalid_utf8"] += 1
                elif not text.strip():
                    stats["skipped_empty"] += 1
                elif sample_fraction >= 1.0 or unit_hash(str(doc_id), salt) < sample_fraction:
                    n = copies(doc_id, source, mix, seed)
                    source = source or DEFAULT_SOURCE
                    texts.extend([text] * n)
                    stats["documents"] += n
                    stats["chars"] += n * len(text)
                    by_source = stats.setdefault("chars_by_source", {})
                    by_source[source] = by_source.get(source, 0) + n * len(text)
            if texts:
                yield texts
        if progress:
            progress("train-tokenizer", i + 1, len(parts))


def train_on_corpus(root: str | os.PathLike, tok: Tokenizer, trainer, fs, parts: list[str],
                    params: dict, sample_fraction: float, seed: int, batch_size: int,
                    progress: Progress | None, mix: dict[str, float] | None = None) -> dict:
    """Train `tok` with `trainer` on the corpus parts (`training_texts`); returns the info
    to save: `params`, the number of parts, the training time and the counts of documents
    and characters fed (an error when there was none)."""
    stats = {"documents": 0, "chars": 0, "skipped_empty": 0, "skipped_invalid_utf8": 0}
    t0 = time.perf_counter()
    tok.train_from_iterator(
        training_texts(fs, parts, sample_fraction, seed, batch_size, stats, progress, mix),
        trainer)
    seconds = time.perf_counter() - t0
    if stats["documents"] == 0:
        raise ValueError(f"empty corpus: no non-empty documents under {root}/{layout.DOCUMENTS} "
                         f"(skipped: {stats})")
    return {"params": params, "corpus_parts": len(parts), "train_seconds": round(seconds, 3),
            **stats}


# ---------------------------------------------------------------- public entry points

def train_tokenizer(root: str | os.PathLike, vocab_size: int = DEFAULT_VOCAB_SIZE,
                    sample_fraction: float = 1.0, min_frequency: int = 2, seed: int = 0,
                    batch_size: int = 1000, overwrite: bool = False,
                    progress: Progress | None = None,
                    mix: dict[str, float] | str | None = None) -> dict:
    """Train byte-level BPE on `<root>/corpus/documents`, write `<root>/tokenizer/`.

    Streams the corpus in record batches (the trainer keeps word counts, not text).
    `sample_fraction` keeps a deterministic subset of documents (by hash of doc_id and
    `seed`). `mix` weights sources (`corpus_name`), e.g. {"wikipedia": 2} feeds every
    Wikipedia document twice (corpus.mixture). Returns the info dict (also written as
    tokenizer_info.json). Skips the work when an info file with the same parameters
    exists, unless `overwrite`.
    """
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    if vocab_size < 256 + 5:
        raise ValueError(f"vocab_size {vocab_size} is below the 256 byte symbols + 5 specials")
    fs, parts = list_documents(root)
    params = {"mode": "trained", "requested_vocab_size": vocab_size,
              "sample_fraction": sample_fraction, "min_frequency": min_frequency, "seed": seed,
              "inputs": part_sizes(fs, parts)}
    mix = parse_mix(mix)
    if mix:  # only then, so that tokenizers trained before mixtures existed stay valid
        params["mix"] = mix
    old = load_info(root)
    if old and not overwrite and old.get("params") == params:
        damage = tokenizer_damage(root, old)
        if damage is None:
            return old
        warnings.warn(f"train-tokenizer: {damage}; training it again", stacklevel=2)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # <mask> comes after training, as the last id
        min_frequency=min_frequency, special_tokens=LEADING_SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    info = train_on_corpus(root, tok, trainer, fs, parts, params, sample_fraction, seed,
                           batch_size, progress, mix)
    warn_unseen_sources(mix, info.get("chars_by_source", {}), "train-tokenizer")
    tok = _append_mask(tok)
    check_specials(tok, "trained tokenizer")
    if tok.get_vocab_size(with_added_tokens=True) < vocab_size:
        warnings.warn(f"train-tokenizer: the corpus gave {tok.get_vocab_size()} tokens, fewer "
                      f"than the {vocab_size} asked for (too little text, or min_frequency="
                      f"{min_frequency} too high)", stacklevel=2)
    return save_tokenizer(root, tok, info, ROBERTA_TOKENIZER_CONFIG)


def tokenizer_from_dir(src_dir: str | os.PathLike) -> tuple[Tokenizer, bytes]:
    """The RoBERTa tokenizer of a directory (a checkpoint's, GPT-2's, ours) and the bytes it
    was built from: `vocab.json` + `merges.txt` when present, else our `tokenizer.json`."""
    sfs, sbase = storage.resolve(src_dir)
    vj, mt, tj = (storage.join(sbase, f) for f in ("vocab.json", "merges.txt", "tokenizer.json"))
    if storage.exists(sfs, vj) and storage.exists(sfs, mt):
        vocab, merges = storage.read_bytes(sfs, vj), storage.read_bytes(sfs, mt)
        tok = tokenizer_from_vocab_merges(json.loads(vocab), read_merges(merges.decode()),
                                          where=sbase)
        return tok, vocab + merges
    if storage.exists(sfs, tj):
        raw = storage.read_bytes(sfs, tj)
        try:
            tok = Tokenizer.from_str(raw.decode())
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
            raise ValueError(f"{tj} is not a readable tokenizer ({e})") from e
        check_specials(tok, tj)
        return _configure(tok), raw
    raise FileNotFoundError(f"{sbase}: needs vocab.json + merges.txt, or tokenizer.json")


def use_existing_tokenizer(root: str | os.PathLike, src_dir: str | os.PathLike,
                           overwrite: bool = False) -> dict:
    """Adopt an existing tokenizer instead of training one.

    `src_dir` holds `vocab.json` + `merges.txt` (GPT-2's or RoBERTa's, e.g. a checkpoint
    directory; used when present) or a `tokenizer.json` of ours. The result is written to
    `<root>/tokenizer/` like a trained one.
    """
    tok, raw = tokenizer_from_dir(src_dir)
    params = {"mode": "existing", "source": os.fspath(src_dir),
              "source_sha256": hashlib.sha256(raw).hexdigest()}
    old = load_info(root)
    if old and not overwrite and old.get("params") == params:
        return old
    return save_tokenizer(root, tok, {"params": params}, ROBERTA_TOKENIZER_CONFIG)


def vocabulary_mismatch(root: str | os.PathLike, src_dir: str | os.PathLike) -> str | None:
    """Why `<root>/tokenizer/` is not the tokenizer of `src_dir` (e.g. a checkpoint a run
    continues from), or None: their vocabularies' hashes (`vocabulary_sha256`) differ, or
    either cannot be read."""
    try:
        theirs = vocabulary_sha256(tokenizer_from_dir(src_dir)[0])
    except (FileNotFoundError, ValueError) as exc:
        return f"{src_dir} has no usable tokenizer to check the shards against ({exc})"
    try:
        ours = vocabulary_sha256(load_tokenizer(root))
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    if ours != theirs:
        return (f"{storage.under(root, layout.TOKENIZER)} is another tokenizer than "
                f"{src_dir}'s (vocabulary sha256 {ours[:12]} vs {theirs[:12]})")
    return None
