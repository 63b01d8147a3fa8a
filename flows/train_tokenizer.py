"""The `train-tokenizer` flow: the corpus → a byte-level BPE under `<root>/tokenizer/`."""
from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from flows.progress import StageProgress
from runroot import layout


@task(name="train-bpe")
def train_bpe(root: str, vocab_size: int, sample_fraction: float, min_frequency: int,
              seed: int, existing: str | None, mix: dict | None = None) -> dict:
    from corpus.bpe import train_tokenizer, use_existing_tokenizer

    if existing:
        return use_existing_tokenizer(root, existing)
    return train_tokenizer(root, vocab_size=vocab_size, sample_fraction=sample_fraction,
                           min_frequency=min_frequency, seed=seed, progress=StageProgress(),
                           mix=mix)


@flow(name="train-tokenizer")
def train_tokenizer_flow(root: str = layout.DEFAULT_ROOT, vocab_size: int = 50265,
                         sample_fraction: float = 1.0, min_frequency: int = 2, seed: int = 0,
                         existing: str | None = None, mix: dict[str, float] | None = None) -> dict:
    """Train RoBERTa's byte-level BPE on `<root>/corpus/documents` (skipped when the same
    tokenizer already exists), or adopt an existing one (e.g. GPT-2's vocab.json + merges.txt).

    Args:
        root: the run root.
        vocab_size: vocabulary size including the special tokens (RoBERTa: 50,265).
        sample_fraction: train on this deterministic fraction of documents.
        min_frequency: minimum pair frequency for a merge.
        seed: seed of the document sample.
        existing: a tokenizer directory to reuse instead of training.
        mix: weights per source (corpus_name), e.g. {"wikipedia": 2}: up-sample Wikipedia 2x.
    """
    info = train_bpe(root, vocab_size, sample_fraction, min_frequency, seed, existing, mix)
    create_table_artifact(key="train-tokenizer", table=[
        {"field": k, "value": str(v)} for k, v in info.items() if not isinstance(v, dict)])
    return info
