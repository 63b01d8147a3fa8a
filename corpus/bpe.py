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
import uuid
import warnings
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from corpus.mixture import DEFAULT_SOURCE, copies, parse_mix, warn_unseen_sources
from corpus.sampling import unit_hash

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
LEADING_SPECIALS = [BOS, PAD, EOS, UNK]  # ids 0..3, RoBERTa order
BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
DEFAULT_VOCAB_SIZE = 50265
TOKENIZER_DIR = "tokenizer"
INFO_FILE = "tokenizer_info.json"
INFO_VERSION = 1

Progress = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): called from the library, never required."""


# ---------------------------------------------------------------- filesystem helpers
# Roots may be local paths or any URI pyarrow understands (s3://, gs://, ...).

def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a pyarrow-understood URI."""
    s = os.fspath(path)
    if "://" in s:
        return pafs.FileSystem.from_uri(s)
    return pafs.LocalFileSystem(), os.path.abspath(s)


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write to a temporary sibling, then rename: readers see all or nothing."""
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def write_json_atomic(fs: pafs.FileSystem, path: str, obj) -> None:
    write_bytes_atomic(fs, path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def list_documents(root: str | os.PathLike) -> tuple[pafs.FileSystem, list[str]]:
    """The corpus parts `<root>/corpus/documents/part-*.parquet`, sorted by name."""
    fs, base = resolve(root)
    docdir = join(base, "corpus", "documents")
    if not exists(fs, docdir):
        raise FileNotFoundError(f"no corpus at {docdir}: run build-corpus first")
    infos = fs.get_file_info(pafs.FileSelector(docdir))
    parts = sorted(i.path for i in infos
                   if i.type == pafs.FileType.File and i.base_name.startswith("part-")
                   and i.base_name.endswith(".parquet"))
    return fs, parts


# ---------------------------------------------------------------- corpus streaming

def decode_texts(col: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Python strings of a text column; None where the bytes are not valid UTF-8.

    Valid columns (the usual case) convert in one call; otherwise row by row. Lone
    surrogates encoded in UTF-8 (CESU-style bytes) are invalid UTF-8 and come back None.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            col.validate(full=True)
            return ["" if t is None else t for t in col.to_pylist()]
        except pa.ArrowInvalid:  # some row is not UTF-8: find which, as bytes
            col = col.view(pa.large_binary() if pa.types.is_large_string(col.type)
                           else pa.binary())
    out: list[str | None] = []
    for b in col.to_pylist():
        if b is None:
            out.append("")
            continue
        try:
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def iter_document_batches(fs: pafs.FileSystem, path: str, batch_size: int = 1000,
                          columns: tuple[str, ...] = ("doc_id", "text"),
                          optional: tuple[str, ...] = (),
                          ) -> Iterator[dict[str, list]]:
    """Stream one corpus part in record batches: {'doc_id': [...], 'text': [str|None]}.
    `optional` columns come back as lists of None when the part lacks them (e.g.
    `corpus_name` in a corpus built before that column existed)."""
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: corpus part lacks column(s) {missing}")
        present = [c for c in optional if c in pf.schema_arrow.names and c not in columns]
        absent = [c for c in optional if c not in pf.schema_arrow.names]
        for rb in pf.iter_batches(batch_size=batch_size, columns=list(columns) + present):
            out = {}
            for name in list(columns) + present:
                col = rb.column(name)
                out[name] = decode_texts(col) if name == "text" else col.to_pylist()
            for name in absent:
                out[name] = [None] * rb.num_rows
            yield out


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


def _check_specials(tok: Tokenizer, where: str) -> None:
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
    _check_specials(tok, where)
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


def _save(root: str | os.PathLike, tok: Tokenizer, info: dict) -> dict:
    fs, base = resolve(root)
    d = join(base, TOKENIZER_DIR)
    vocab = full_vocab(tok)
    sha = tokenizer_sha256(tok)
    info = dict(info, vocab_size=len(vocab), mask_id=vocab[MASK], bos_id=BOS_ID, pad_id=PAD_ID,
                eos_id=EOS_ID, unk_id=UNK_ID, tokenizer_sha256=sha, version=INFO_VERSION,
                files=["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                       "special_tokens_map.json"])
    # A stale info file must not vouch for new files while they are being replaced.
    if exists(fs, join(d, INFO_FILE)):
        fs.delete_file(join(d, INFO_FILE))
    write_bytes_atomic(fs, join(d, "tokenizer.json"), tok.to_str(pretty=True).encode())
    write_bytes_atomic(fs, join(d, "vocab.json"),
                       json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1])),
                                  ensure_ascii=False).encode())
    write_bytes_atomic(fs, join(d, "merges.txt"),
                       ("#version: 0.2\n" + "\n".join(model_merges(tok)) + "\n").encode())
    specials = {"bos_token": BOS, "eos_token": EOS, "sep_token": EOS, "cls_token": BOS,
                "unk_token": UNK, "pad_token": PAD, "mask_token": MASK}
    write_json_atomic(fs, join(d, "special_tokens_map.json"), specials)
    write_json_atomic(fs, join(d, "tokenizer_config.json"),
                      dict(specials, tokenizer_class="RobertaTokenizer", add_prefix_space=False,
                           trim_offsets=True, errors="replace", model_max_length=512))
    write_json_atomic(fs, join(d, INFO_FILE), info)
    return info


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Our tokenizer from a run root (`<root>/tokenizer/`) or a tokenizer directory."""
    fs, base = resolve(path)
    for cand in (join(base, TOKENIZER_DIR, "tokenizer.json"), join(base, "tokenizer.json")):
        if exists(fs, cand):
            try:
                tok = Tokenizer.from_str(read_bytes(fs, cand).decode())
            except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
                raise ValueError(f"{cand} is not a readable tokenizer ({e}); rerun "
                                 "train-tokenizer (it rebuilds a damaged tokenizer)") from e
            _check_specials(tok, cand)
            return tok
    raise FileNotFoundError(f"no tokenizer.json under {base} or {join(base, TOKENIZER_DIR)}: "
                            "run train-tokenizer first")


def tokenizer_damage(root: str | os.PathLike, info: dict) -> str | None:
    """Why the files that `info` describes cannot be trusted any more, or None: the info file
    says a tokenizer was written, only the files say it still is."""
    fs, base = resolve(root)
    d = join(base, TOKENIZER_DIR)
    missing = [f for f in info.get("files", ["tokenizer.json"]) if not exists(fs, join(d, f))]
    if missing:
        return f"{', '.join(missing)} missing under {d}"
    try:
        tok = load_tokenizer(root)
    except ValueError as e:
        return str(e)
    if tokenizer_sha256(tok) != info.get("tokenizer_sha256"):
        return f"{join(d, 'tokenizer.json')} is not the tokenizer {INFO_FILE} records"
    return None


def load_info(root: str | os.PathLike) -> dict | None:
    fs, base = resolve(root)
    p = join(base, TOKENIZER_DIR, INFO_FILE)
    return json.loads(read_bytes(fs, p)) if exists(fs, p) else None


# ---------------------------------------------------------------- public entry points

def _training_texts(fs, parts, sample_fraction: float, seed: int, batch_size: int,
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


def train_tokenizer(root: str | os.PathLike, vocab_size: int = DEFAULT_VOCAB_SIZE,
                    sample_fraction: float = 1.0, min_frequency: int = 2, seed: int = 0,
                    batch_size: int = 1000, overwrite: bool = False,
                    progress: Progress | None = None,
                    mix: dict[str, float] | str | None = None) -> dict:
    """Train byte-level BPE on `<root>/corpus/documents`, write `<root>/tokenizer/`.

    Streams the corpus in record batches (the trainer keeps word counts, not text).
    `sample_fraction` keeps a deterministic subset of documents (by hash of doc_id and
    `seed`). `mix` weights sources (`corpus_name`), e.g. {"wikipedia": 2} feeds every
    Wikipedia document twice (corpus.mixture). Returns the info dict (also written as tokenizer_info.json). Skips the work
    when an info file with the same parameters exists, unless `overwrite`.
    """
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    if vocab_size < 256 + 5:
        raise ValueError(f"vocab_size {vocab_size} is below the 256 byte symbols + 5 specials")
    fs, parts = list_documents(root)
    if not parts:
        raise ValueError(f"empty corpus: no part-*.parquet under {root}/corpus/documents")
    params = {"mode": "trained", "requested_vocab_size": vocab_size,
              "sample_fraction": sample_fraction, "min_frequency": min_frequency, "seed": seed,
              "inputs": [[p.rsplit("/", 1)[1], fs.get_file_info(p).size] for p in parts]}
    mix = parse_mix(mix)
    if mix:  # only then, so that tokenizers trained before mixtures existed stay valid
        params["mix"] = mix
    old = load_info(root)
    if old and not overwrite and old.get("params") == params:
        damage = tokenizer_damage(root, old)
        if damage is None:
            return old
        warnings.warn(f"train-tokenizer: {damage}; training it again", stacklevel=2)
    stats = {"documents": 0, "chars": 0, "skipped_empty": 0, "skipped_invalid_utf8": 0}
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # <mask> comes after training, as the last id
        min_frequency=min_frequency, special_tokens=LEADING_SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t0 = time.perf_counter()
    tok.train_from_iterator(
        _training_texts(fs, parts, sample_fraction, seed, batch_size, stats, progress, mix),
        trainer)
    seconds = time.perf_counter() - t0
    if stats["documents"] == 0:
        raise ValueError(f"empty corpus: no non-empty documents under {root}/corpus/documents "
                         f"(skipped: {stats})")
    warn_unseen_sources(mix, stats.get("chars_by_source", {}), "train-tokenizer")
    tok = _append_mask(tok)
    _check_specials(tok, "trained tokenizer")
    if tok.get_vocab_size(with_added_tokens=True) < vocab_size:
        warnings.warn(f"train-tokenizer: the corpus gave {tok.get_vocab_size()} tokens, fewer "
                      f"than the {vocab_size} asked for (too little text, or min_frequency="
                      f"{min_frequency} too high)", stacklevel=2)
    info = {"params": params, "corpus_parts": len(parts), "train_seconds": round(seconds, 3),
            **stats}
    return _save(root, tok, info)


def use_existing_tokenizer(root: str | os.PathLike, src_dir: str | os.PathLike,
                           overwrite: bool = False) -> dict:
    """Adopt an existing tokenizer instead of training one.

    `src_dir` holds `vocab.json` + `merges.txt` (GPT-2's or RoBERTa's; used when present) or a
    `tokenizer.json` of ours. The result is written to `<root>/tokenizer/` like a trained one.
    """
    sfs, sbase = resolve(src_dir)
    vj, mt, tj = join(sbase, "vocab.json"), join(sbase, "merges.txt"), join(sbase, "tokenizer.json")
    if exists(sfs, vj) and exists(sfs, mt):
        raw = read_bytes(sfs, vj) + read_bytes(sfs, mt)
        tok = tokenizer_from_vocab_merges(json.loads(read_bytes(sfs, vj)),
                                          read_merges(read_bytes(sfs, mt).decode()), where=sbase)
    elif exists(sfs, tj):
        raw = read_bytes(sfs, tj)
        tok = Tokenizer.from_str(raw.decode())
        _check_specials(tok, tj)
        tok = _configure(tok)
    else:
        raise FileNotFoundError(f"{sbase}: needs vocab.json + merges.txt, or tokenizer.json")
    params = {"mode": "existing", "source": os.fspath(src_dir),
              "source_sha256": hashlib.sha256(raw).hexdigest()}
    old = load_info(root)
    if old and not overwrite and old.get("params") == params:
        return old
    return _save(root, tok, {"params": params})
