"""Synthetic, learnable tasks written in the real on-disk formats, and a tiny random-init
checkpoint to finetune on them: the proof that the harness learns, on a CPU, in seconds.

  SST-2 format   label 1 iff the sentence holds one of the POSITIVE cue words (else one of
                 the NEGATIVE ones), among random filler words
  SQuAD format   the context hides one "the key is <animal>" clause among filler clauses;
                 the question asks for the key; the answer is the animal (v2.0: a third of
                 the questions have no key clause and are unanswerable)
  RACE format    the article names one animal; the question asks which animal it names;
                 the options are that animal and three others

The words are plain, so a byte-level BPE trained on `synthetic_texts` keeps each one a token.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

from runroot import layout

FILLER = ("river stone table window garden letter market morning paper yellow quiet open "
          "city road light music winter summer bread water green small large early late "
          "north south chair train cloud field house silver copper wooden simple narrow wide "
          "slow fast warm cold bright dark soft loud").split()
POSITIVE = "great wonderful excellent superb lovely".split()
NEGATIVE = "awful terrible horrible dreadful poor".split()
ANIMALS = "zebra tiger rabbit falcon otter badger lizard walrus panda beaver".split()


def _sentence(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(n)]


def _cue_sentence(rng: random.Random) -> tuple[str, int]:
    label = rng.randrange(2)
    words = _sentence(rng, rng.randint(5, 9))
    words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    return " ".join(words), label


def write_synthetic_sst2(data_dir: str | os.PathLike, n_train: int = 400, n_dev: int = 100,
                         seed: int = 0) -> Path:
    """`<data_dir>/SST-2/{train,dev}.tsv` (header sentence/label), label from a lexical cue."""
    rng = random.Random(seed)
    d = Path(data_dir) / "SST-2"
    d.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        rows = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in (_cue_sentence(rng) for _ in range(n))]
        (d / name).write_text("\n".join(rows) + "\n")
    return d


def _squad_item(rng: random.Random, qid: str, answerable: bool) -> dict:
    clauses = [" ".join(_sentence(rng, rng.randint(4, 8))) for _ in range(rng.randint(2, 4))]
    animal = rng.choice(ANIMALS)
    key_at = rng.randrange(len(clauses) + 1)
    if answerable:
        clauses.insert(key_at, f"the key is {animal}")
    context = ""
    answer_start = None
    for i, c in enumerate(clauses):
        if answerable and i == key_at:
            answer_start = len(context) + len("the key is ")
        context += c + " . "
    context = context.strip()
    qa = {"id": qid, "question": "what is the key ?", "answers": [], "is_impossible": not answerable}
    if answerable:
        qa["answers"] = [{"text": animal, "answer_start": answer_start}]
    return {"context": context, "qas": [qa]}


def write_synthetic_squad(data_dir: str | os.PathLike, n_train: int = 300, n_dev: int = 60,
                          seed: int = 0, version: int = 1) -> Path:
    """`<data_dir>/SQuAD/{train,dev}-v{1.1,2.0}.json` in the official layout."""
    rng = random.Random(seed)
    d = Path(data_dir) / "SQuAD"
    d.mkdir(parents=True, exist_ok=True)
    tag = "1.1" if version == 1 else "2.0"
    for split, n in (("train", n_train), ("dev", n_dev)):
        paras = []
        for i in range(n):
            answerable = version == 1 or rng.random() >= 1 / 3
            item = _squad_item(rng, f"{split}-{i:05d}", answerable)
            if version == 1:
                del item["qas"][0]["is_impossible"]
            paras.append(item)
        doc = {"version": f"v{tag}", "data": [{"title": "synthetic", "paragraphs": paras}]}
        (d / f"{split}-v{tag}.json").write_text(json.dumps(doc))
    return d


def write_synthetic_race(data_dir: str | os.PathLike, n_per_level: int = 40,
                         seed: int = 0, splits=("train", "dev")) -> Path:
    """`<data_dir>/RACE/<split>/{middle,high}/<n>.txt`, one passage with one question each."""
    rng = random.Random(seed)
    base = Path(data_dir) / "RACE"
    for split in splits:
        for level in ("middle", "high"):
            d = base / split / level
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_level):
                options = rng.sample(ANIMALS, 4)
                label = rng.randrange(4)
                words = _sentence(rng, rng.randint(8, 14))
                words.insert(rng.randrange(len(words) + 1), options[label])
                doc = {"answers": ["ABCD"[label]], "options": [options],
                       "questions": ["which animal does the passage name ?"],
                       "article": " ".join(words) + " .", "id": f"{level}{i}.txt"}
                (d / f"{i}.txt").write_text(json.dumps(doc))
    return base


def synthetic_texts(n: int = 300, seed: int = 0) -> list[str]:
    """Texts using every synthetic word, to train a small tokenizer on."""
    rng = random.Random(seed)
    vocab_line = " ".join(FILLER + POSITIVE + NEGATIVE + ANIMALS)
    out = [vocab_line, "the key is what ? which animal does the passage name . " + vocab_line]
    for _ in range(n):
        out.append(_cue_sentence(rng)[0] + " . " + _squad_item(rng, "x", True)["context"])
    return out


def make_tiny_checkpoint(out_dir: str | os.PathLike, preset: str = "tiny", vocab_size: int = 600,
                         seed: int = 0, texts: list[str] | None = None, **model_overrides) -> Path:
    """A randomly initialised model of `preset` size with a byte-level BPE trained here (by
    `corpus.bpe.train_tokenizer`) on `texts`, exported in the HF layout a `pretrain`
    checkpoint has (config.json, model.safetensors, tokenizer files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.bpe import train_tokenizer
    from training.config import ModelConfig
    from training.hf_io import export_hf
    from training.model import build_model

    texts = synthetic_texts(seed=seed) if texts is None else texts
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / layout.DOCUMENTS
        docs.mkdir(parents=True)
        pq.write_table(pa.table({"doc_id": [f"d{i}" for i in range(len(texts))], "text": texts}),
                       docs / "part-00000.parquet")
        info = train_tokenizer(tmp, vocab_size=vocab_size, min_frequency=1)
        cfg = ModelConfig.named(preset, vocab_size=info["vocab_size"], **model_overrides)
        return export_hf(build_model(cfg, seed=seed), out_dir,
                         tokenizer_dir=Path(tmp) / layout.TOKENIZER)


def write_standin_tasks(data_dir: str | os.PathLike,
                        tasks: tuple[str, ...] = ("sst2", "squad1")) -> Path:
    """Learnable stand-ins in the real task formats, for runs without task data (the demo's
    sst2 and squad1; the ablations' also squad2 and race): their scores show that an encoder
    can be finetuned, not how good it is. A task whose dev data exists is left as it is."""
    d = Path(data_dir)
    writers = {
        "sst2": ("SST-2/dev.tsv", lambda: write_synthetic_sst2(d, n_train=300, n_dev=100, seed=0)),
        "squad1": ("SQuAD/dev-v1.1.json",
                   lambda: write_synthetic_squad(d, n_train=200, n_dev=50, seed=0, version=1)),
        "squad2": ("SQuAD/dev-v2.0.json",
                   lambda: write_synthetic_squad(d, n_train=200, n_dev=50, seed=1, version=2)),
        "race": ("RACE/dev", lambda: write_synthetic_race(d, n_per_level=40, seed=0)),
    }
    for task in tasks:
        marker, write = writers[task]
        if not (d / marker).exists():
            write()
    return d


__all__ = ["write_standin_tasks", "write_synthetic_sst2", "write_synthetic_squad", "write_synthetic_race",
           "synthetic_texts", "make_tiny_checkpoint", "FILLER", "POSITIVE", "NEGATIVE", "ANIMALS"]
