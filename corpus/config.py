"""`CorpusConfig`: every knob of build-corpus in one dataclass (nanoGPT style).

The flow exposes these as parameters; the library only reads them. Defaults follow the
sources in shared/reference/corpus_anchors.md (datatrove's Gopher/C4 thresholds, datasketch's
128 permutations, a 0.8 near-duplicate threshold) and were checked on the bundled sample.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CorpusConfig:
    # Language identification (py3langid, model inside the wheel).
    languages: tuple[str, ...] = ("en",)       # ISO 639-1 codes to keep
    lang_threshold: float = 0.65               # min normalised probability of the top language
    lid_max_chars: int = 20_000                # LID reads at most this much text (cost bound)

    # Cheap-first skipping before extraction; off = extract every HTML page (the baseline).
    prefilter: bool = True
    prefilter_lang_threshold: float = 0.95     # quick LID confidence needed to skip a page

    # Extraction (trafilatura).
    max_page_bytes: int = 2 << 20              # payloads above this are counted, not parsed
    extract_timeout_s: float = 10.0            # per-document wall-clock limit
    timeout_mode: str = "auto"                 # auto | signal | subprocess | none (see corpus.extract)
    favor_precision: bool = True               # as FineWeb

    # Quality filters (see corpus.quality for what each rule means).
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    min_terminal_punct_lines_ratio: float = 0.12
    max_dup_lines_ratio: float = 0.3
    max_dup_line_chars_ratio: float = 0.2

    # Dedup.
    num_perm: int = 128                        # MinHash permutations
    shingle_words: int = 5                     # word n-gram size for MinHash shingles
    minhash_seed: int = 1                      # datasketch's default seed
    dedup_threshold: float = 0.8               # Jaccard threshold for near duplicates
    docs_per_part: int = 100_000               # rows per corpus/documents/part-*.parquet

    # Which corpus the documents belong to (the `corpus_name` column): build-corpus reads
    # WARCs of CC-NEWS by default; import-corpus sets it from --name.
    corpus_name: str = "cc-news"

    extra: dict = field(default_factory=dict)  # free-form, recorded in manifests

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["languages"] = list(self.languages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CorpusConfig":
        d = dict(d)
        if "languages" in d:
            d["languages"] = tuple(d["languages"])
        return cls(**d)
