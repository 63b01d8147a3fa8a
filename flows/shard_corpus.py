"""The `shard-corpus` flow: documents + tokenizer → packed token blocks under `<root>/shards/`."""
from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from flows.progress import StageProgress
from runroot import layout
from runroot.shard_format import FORMATS


@task(name="encode-and-pack")
def encode_and_pack(root: str, fmt: str, block_size: int, valid_fraction: float,
                    static_masks: int, seed: int, workers: int | None,
                    mix: dict | None = None) -> dict:
    from corpus.sharding import shard_corpus

    return shard_corpus(root, fmt=fmt, block_size=block_size, valid_fraction=valid_fraction,
                        static_masks=static_masks, seed=seed, workers=workers,
                        progress=StageProgress(), mix=mix)


@flow(name="shard-corpus")
def shard_corpus_flow(root: str = layout.DEFAULT_ROOT, format: str = "full-sentences",
                      block_size: int = 512, valid_fraction: float = 0.01,
                      static_masks: int = 0, seed: int = 0, workers: int | None = None,
                      mix: dict[str, float] | None = None) -> dict:
    """Encode the corpus and pack blocks in one of the paper's input formats (Section 4.2).

    Args:
        root: the run root (reads corpus/documents and tokenizer/).
        format: full-sentences (default, the paper's choice), doc-sentences,
            segment-pair (+NSP) or sentence-pair (+NSP).
        block_size: tokens per block, `<s>` included (the paper: 512).
        valid_fraction: share of documents held out for validation (split by doc_id hash).
        static_masks: store K fixed masks per block (original BERT; 0 = dynamic masking).
        seed: seed for NSP negatives and static masks.
        workers: encoding processes (default: CPU cores).
        mix: weights per source (corpus_name), e.g. {"wikipedia": 2}: train documents of
            Wikipedia packed twice; the manifest reports tokens per source.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    manifest = encode_and_pack(root, format, block_size, valid_fraction, static_masks, seed,
                               workers, mix)
    create_table_artifact(key="shard-corpus", table=[
        {"split": split, **{k: v for k, v in s.items() if isinstance(v, (int, float))}}
        for split, s in manifest["splits"].items()],
        description=f"{manifest['format']} blocks of {manifest['block_size']} tokens")
    return manifest
