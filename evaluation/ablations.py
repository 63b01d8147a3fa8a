"""The paper's Section 4 comparisons as data: which arms each table needs, how the paper's
settings map to a chosen scale, the paper's numbers, and the tables/charts built from our
results. No Prefect here: `flows/ablations.py` runs the arms and calls these.

Arms (each one shard set + one pretrain run + finetune-eval):

    Table 1 (§4.1, BERT-BASE setup: SEGMENT-PAIR + NSP)   static (K masks) | dynamic
    Table 2 (§4.2, dynamic masking)                        segment-pair+NSP | sentence-pair+NSP
                                                           | full-sentences | doc-sentences
    Table 3 (§4.3, FULL-SENTENCES, equal compute)          b x S, lr L | 8b x S/8, 7L
                                                           | 32b x S/32, 10L
    §4.4 (FULL-SENTENCES)                                  byte-level BPE V | char-level BPE 0.6V

Arms with identical settings are one run: Table 1's dynamic arm is Table 2's segment-pair arm;
Table 2's full-sentences arm is Table 3's b x S arm and §4.4's byte-level arm.

Scale mapping. The paper's Table 3 is 256 x 1M (lr 1e-4), 2K x 125K (7e-4), 8K x 31K (1e-3):
batch x8 and x32 with steps /8 and /32 (same sequences seen), learning rate x7 and x10. We
keep those ratios around a base batch b, base steps S and base learning rate L. Tables 1, 2
and §4.4 use (b, S, L) like the paper's 256 x 1M at BERT's 1e-4. Default L is a tenth of the
model preset's peak learning rate, so the 32b arm gets the preset's own peak (tiny: exactly
the paper's 1e-4 / 7e-4 / 1e-3). Warm-up is the preset's fraction of the schedule. §4.4's
vocabularies keep the paper's ratio 30K / 50K: a character-level BPE of 0.6 x the byte-level
vocabulary of the run root's tokenizer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from runroot import storage

TABLE_IDS = ("1", "2", "3", "bpe")
PAPER_LR_RATIOS = {1: 1.0, 8: 7.0, 32: 10.0}    # 1e-4 -> 7e-4 -> 1e-3 (Table 3)
CHAR_VOCAB_RATIO = 30000 / 50000                 # BERT's 30K vs RoBERTa's 50K (§4.4)
PAPER_CHAR_VOCAB, PAPER_BYTE_VOCAB = 30000, 50000


@dataclass(frozen=True)
class Arm:
    """One pretraining setting. `batch_mult`/`lr_mult` scale the base batch and lr (steps are
    divided by batch_mult: equal compute)."""

    name: str
    format: str = "full-sentences"
    masking: str = "dynamic"
    tokenizer: str = "byte"            # byte: the run root's tokenizer | char: char-level BPE
    batch_mult: int = 1

    @property
    def lr_mult(self) -> float:
        return PAPER_LR_RATIOS[self.batch_mult]

    @property
    def nsp(self) -> bool:
        return self.format in ("segment-pair", "sentence-pair")


ARMS = {a.name: a for a in [
    Arm("segment-pair-static", format="segment-pair", masking="static"),
    Arm("segment-pair", format="segment-pair"),
    Arm("sentence-pair", format="sentence-pair"),
    Arm("full-sentences"),
    Arm("doc-sentences", format="doc-sentences"),
    Arm("full-sentences-bsz8x", batch_mult=8),
    Arm("full-sentences-bsz32x", batch_mult=32),
    Arm("full-sentences-char-bpe", tokenizer="char"),
]}

# Paper numbers (arXiv v1; /work/shared/reference/fairseq_recipe.md §5). Keys: our row labels.
PAPER = {
    "1": {"title": "Table 1: static vs dynamic masking (SEGMENT-PAIR + NSP)",
          "note": "Paper: BERT-BASE, dev, median of 5 seeds; reference BERT-BASE row: SQuAD 2.0 "
                  "76.3, MNLI-m 84.3, SST-2 92.8.",
          "rows": [("static", "segment-pair-static",
                    {"squad2_f1": 78.3, "mnli_m": 84.3, "sst2": 92.5}),
                   ("dynamic", "segment-pair",
                    {"squad2_f1": 78.7, "mnli_m": 84.0, "sst2": 92.9})]},
    "2": {"title": "Table 2: input format and next sentence prediction",
          "note": "Paper: BERT-BASE on Books+Wiki, 1M steps, bsz 256, median of 5 seeds; BERT-BASE "
                  "88.5/76.3, 84.3, 92.8, 64.3. The paper's DOC-SENTENCES varies the batch size to "
                  "match FULL-SENTENCES' tokens per batch; ours keeps the batch fixed.",
          "rows": [("SEGMENT-PAIR (+NSP)", "segment-pair",
                    {"squad1_f1": 90.4, "squad2_f1": 78.7, "mnli_m": 84.0, "sst2": 92.9,
                     "race": 64.2}),
                   ("SENTENCE-PAIR (+NSP)", "sentence-pair",
                    {"squad1_f1": 88.7, "squad2_f1": 76.2, "mnli_m": 82.9, "sst2": 92.1,
                     "race": 63.0}),
                   ("FULL-SENTENCES (no NSP)", "full-sentences",
                    {"squad1_f1": 90.4, "squad2_f1": 79.1, "mnli_m": 84.7, "sst2": 92.5,
                     "race": 64.8}),
                   ("DOC-SENTENCES (no NSP)", "doc-sentences",
                    {"squad1_f1": 90.6, "squad2_f1": 79.7, "mnli_m": 84.7, "sst2": 92.7,
                     "race": 65.6})]},
    "3": {"title": "Table 3: batch size at equal compute (FULL-SENTENCES)",
          "note": "Paper: BERT-BASE on Books+Wiki, same number of passes; ppl on held-out training "
                  "data. Our batch x8 / x32 with steps /8 / /32 and lr x7 / x10 mirror "
                  "256 x 1M @ 1e-4, 2K x 125K @ 7e-4, 8K x 31K @ 1e-3.",
          "rows": [("bsz b, S steps", "full-sentences",
                    {"bsz": "256", "steps": "1M", "lr": 1e-4, "ppl": 3.99, "mnli_m": 84.7,
                     "sst2": 92.7}),
                   ("bsz 8b, S/8 steps", "full-sentences-bsz8x",
                    {"bsz": "2K", "steps": "125K", "lr": 7e-4, "ppl": 3.68, "mnli_m": 85.2,
                     "sst2": 92.9}),
                   ("bsz 32b, S/32 steps", "full-sentences-bsz32x",
                    {"bsz": "8K", "steps": "31K", "lr": 1e-3, "ppl": 3.77, "mnli_m": 84.6,
                     "sst2": 92.8})]},
    "bpe": {"title": "Section 4.4: byte-level BPE vs character-level BPE (FULL-SENTENCES)",
            "note": "The paper gives no numbers: 'only slight differences', the byte-level BPE "
                    "'achieving slightly worse end-task performance on some tasks'; it adds ~15M "
                    "parameters to BASE. Perplexities over different vocabularies are not "
                    "comparable (different units); compare the task scores.",
            "rows": [("byte-level BPE", "full-sentences",
                      {"vocab": PAPER_BYTE_VOCAB,
                       "note": "slightly worse on some tasks; kept for universality"}),
                     ("character-level BPE", "full-sentences-char-bpe",
                      {"vocab": PAPER_CHAR_VOCAB, "note": "BERT's original encoding"})]},
}

# Our task -> the paper column it corresponds to.
TASK_TO_PAPER = {"squad1": "squad1_f1", "squad2": "squad2_f1", "mnli": "mnli_m", "sst2": "sst2",
                 "race": "race"}


def parse_tables(spec: str | list[str] | None) -> list[str]:
    if spec is None:
        return list(TABLE_IDS)
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out = []
    for t in (s.strip().lower().removeprefix("table") for s in items):
        if not t:
            continue
        if t not in TABLE_IDS:
            raise ValueError(f"unknown ablation table {t!r}: choose from {', '.join(TABLE_IDS)}")
        if t not in out:
            out.append(t)
    if not out:
        raise ValueError(f"--tables {spec if isinstance(spec, str) else ','.join(items)!r} "
                         f"names no table: choose from {', '.join(TABLE_IDS)}")
    return out


def arms_for(tables: list[str]) -> list[Arm]:
    """The distinct arms the tables need, in table order."""
    names: list[str] = []
    for t in tables:
        for _, arm, _ in PAPER[t]["rows"]:
            if arm not in names:
                names.append(arm)
    return [ARMS[n] for n in names]


@dataclass(frozen=True)
class Scale:
    """The base setting (b, S, L) every arm is derived from, plus shared data settings."""

    config: str = "tiny"
    batch_size: int = 8                 # b: sequences per update of the base arm
    steps: int = 256                    # S: updates of the base arm (a multiple of 32 for Table 3)
    lr: float = 1e-4                    # L: peak learning rate of the base arm
    warmup_fraction: float = 0.02
    block_size: int = 128
    micro_batch_size: int = 8
    valid_sequences: int = 256          # held-out sequences behind each perplexity
    valid_fraction: float = 0.02
    static_masks: int = 10
    byte_vocab: int = 50265             # the run root's tokenizer
    char_vocab: int = 30000
    seed: int = 0

    @classmethod
    def make(cls, config: str = "tiny", batch_size: int | None = None,
             steps: int | None = None, lr: float | None = None,
             micro_batch_size: int | None = None, byte_vocab: int = 50265,
             char_vocab: int | None = None, **kw) -> "Scale":
        """Defaults from the model preset: b = preset batch / 32 (at least 8), S = preset steps
        (a multiple of 32), L = preset peak lr / 10, warm-up the preset's fraction."""
        from training.config import OptimConfig

        preset = OptimConfig.named(config)
        b = batch_size or max(8, preset.batch_size // 32)
        s = steps or max(32, preset.total_steps // 32 * 32)
        micro = micro_batch_size or math.gcd(b, 16)
        return cls(config=config, batch_size=b, steps=s,
                   lr=lr if lr is not None else preset.peak_lr / 10,
                   warmup_fraction=preset.warmup_steps / preset.total_steps,
                   micro_batch_size=micro, byte_vocab=byte_vocab,
                   char_vocab=char_vocab or max(64, round(byte_vocab * CHAR_VOCAB_RATIO)), **kw)

    def check(self, arms: list[Arm]) -> None:
        for arm in arms:
            if self.steps % arm.batch_mult:
                raise ValueError(f"steps {self.steps} is not divisible by {arm.batch_mult} "
                                 f"(arm {arm.name}: S/{arm.batch_mult} updates); use a multiple "
                                 "of 32 for Table 3")
        static = [a.name for a in arms if a.masking == "static"]
        if static and self.static_masks < 1:
            raise ValueError(f"arm {static[0]} (Table 1's static masking) needs K >= 1 stored "
                             f"masks, got static_masks={self.static_masks}: pass "
                             "--static-masks K (the paper: 10), or leave table 1 out of --tables")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of "
                             f"micro_batch_size {self.micro_batch_size}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def data_id(arm: Arm, scale: Scale) -> str:
    """The shard set an arm trains on (arms differing only in batch/lr share one)."""
    masks = f"-static{scale.static_masks}" if arm.masking == "static" else ""
    tok = "byte" if arm.tokenizer == "byte" else f"char{scale.char_vocab}"
    return f"{arm.format}{masks}-{tok}-T{scale.block_size}"


def arm_settings(arm: Arm, scale: Scale) -> dict:
    """Everything that determines an arm's pretraining: its hash names the pretrain run."""
    steps = scale.steps // arm.batch_mult
    return {"arm": arm.name, "format": arm.format, "masking": arm.masking, "nsp": arm.nsp,
            "tokenizer": arm.tokenizer, "data": data_id(arm, scale), "config": scale.config,
            "batch_size": scale.batch_size * arm.batch_mult, "steps": steps,
            "lr": scale.lr * arm.lr_mult,
            "warmup_steps": int(round(scale.warmup_fraction * steps)),
            "micro_batch_size": scale.micro_batch_size,
            "valid_batches": max(1, math.ceil(scale.valid_sequences / scale.micro_batch_size)),
            "block_size": scale.block_size, "seed": scale.seed,
            "static_masks": scale.static_masks if arm.masking == "static" else 0,
            "valid_fraction": scale.valid_fraction}


def data_identity(manifest: dict) -> dict:
    """What an arm's shard set was built from, as its shards manifest records it: the
    tokenizer's hash and the shard parameters (format, block size, masks, seed, and the corpus
    inputs with their sizes). Part of an arm's skip key and pretrain run name, so a retrained
    tokenizer or a changed corpus reruns the arm instead of reusing its old results."""
    params = manifest.get("params") or {}
    return {"tokenizer_sha256": manifest.get("tokenizer_sha256"),
            "vocab_size": manifest.get("vocab_size"),
            "params": hashlib.sha256(json.dumps(params, sort_keys=True, default=str)
                                     .encode()).hexdigest()}


def arm_key(settings: dict, finetune: dict, manifest: dict) -> dict:
    """An arm's skip key: its settings, finetune options and data identity (JSON-normalised)."""
    return json.loads(json.dumps({"settings": settings, "finetune": finetune,
                                  "data": data_identity(manifest)}, default=str))


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


# ---------------------------------------------------------------- tables

def _fmt_lr(x: float) -> str:
    return f"{x:.3g}"


def build_table(table: str, results: dict[str, dict], tasks: list[str]) -> list[dict]:
    """One row per paper row: our settings, held-out perplexity and task scores (primary
    metric of each task), and the paper's numbers beside them (`paper_*` columns)."""
    spec = PAPER[table]
    rows = []
    for label, arm_name, paper in spec["rows"]:
        r = results.get(arm_name) or {}
        s = r.get("settings") or {}
        row = {"row": label, "arm": arm_name, "format": s.get("format"),
               "masking": s.get("masking"), "nsp": s.get("nsp"),
               "tokenizer": s.get("tokenizer"), "vocab_size": r.get("vocab_size"),
               "batch_size": s.get("batch_size"), "steps": s.get("steps"), "lr": s.get("lr"),
               "ppl": r.get("ppl"), "valid_loss": r.get("valid_loss"),
               "error": r.get("error")}
        for task in tasks:
            row[f"ours_{task}"] = (r.get("scores") or {}).get(task)
        for k, v in paper.items():
            row[f"paper_{k}"] = v
        rows.append(row)
    return rows


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 0.01 else f"{v:.2f}"
    return str(v)


def to_markdown(table: str, rows: list[dict], tasks: list[str], scale: dict | None = None,
                metrics: dict[str, str] | None = None) -> str:
    """The table as the paper shows it: our columns, then the paper's."""
    spec = PAPER[table]
    ours = ["row", "batch_size", "steps", "lr"] if table == "3" else ["row"]
    if table == "bpe":
        ours.append("vocab_size")
    ours += ["ppl"] + [f"ours_{t}" for t in tasks]
    paper = [k for k in rows[0] if k.startswith("paper_")] if rows else []
    names = {"row": "arm", "batch_size": "bsz", "vocab_size": "vocab", "ppl": "ppl (ours)"}
    for t in tasks:
        names[f"ours_{t}"] = f"{t} {(metrics or {}).get(t, '')} (ours)".replace("  ", " ")
    head = [names.get(c, c) for c in ours] + [c.replace("paper_", "paper ") for c in paper]
    lines = [f"### {spec['title']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in ours + paper) + " |")
    failed = [f"- {r['row']} (arm {r['arm']}): FAILED: {r['error']}"
              for r in rows if r.get("error")]
    if failed:
        lines += ["", "Failed arms (no numbers; fix and rerun):", *failed]
    lines += ["", spec["note"]]
    if scale:
        lines += ["", "Our scale: " + ", ".join(f"{k}={v}" for k, v in scale.items())]
    return "\n".join(lines) + "\n"


def plot_table(table: str, rows: list[dict], tasks: list[str], path) -> None:
    """Held-out perplexity per arm, and per task our score (bars) with the paper's (marks)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["row"] for r in rows]
    panels = ["ppl"] + tasks
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.6), squeeze=False)
    x = range(len(rows))
    for ax, p in zip(axes[0], panels):
        col = "ppl" if p == "ppl" else f"ours_{p}"
        vals = [r.get(col) if r.get(col) is not None else float("nan") for r in rows]
        ax.bar(x, vals, color=[f"C{i}" for i in x], label="ours")
        paper_col = "paper_ppl" if p == "ppl" else f"paper_{TASK_TO_PAPER.get(p, p)}"
        paper = [r.get(paper_col) for r in rows]
        if p != "ppl" and any(isinstance(v, (int, float)) for v in paper):
            ax.plot(list(x), [v if isinstance(v, (int, float)) else float("nan") for v in paper],
                    "kD", label="paper")
            ax.legend(fontsize=7)
        ax.set_title("held-out perplexity (ours)" if p == "ppl" else p, fontsize=9)
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(PAPER[table]["title"], fontsize=10)
    fig.tight_layout()
    with storage.atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)    # the temporary name does not end in .png
    plt.close(fig)


__all__ = ["Arm", "ARMS", "PAPER", "Scale", "TABLE_IDS", "parse_tables", "arms_for",
           "data_id", "arm_settings", "data_identity", "arm_key", "settings_hash", "build_table",
           "to_markdown", "plot_table"]
