"""The `ablations` flow: the paper's Section 4 comparisons (Tables 1–3, §4.4) on a run root's
corpus at a chosen scale, with the paper's numbers beside ours.

    <root>/corpus/documents + <root>/tokenizer        (from build-corpus, train-tokenizer)
    <root>/ablations/_data/<data-id>/                 one shard set per (format, masks,
        corpus -> <root>/corpus, tokenizer -> <root>/tokenizer (or its own char-level BPE),
        shards/                                       tokenizer, block size)
    <root>/ablations/<arm>/                           one per arm
        corpus, tokenizer, shards -> its shard set
        pretrain/run-<hash>/                          the pretrain run (hash of its settings)
        results/                                      finetune-eval's table and job cache
        arm.json                                      written last: the arm is done
    <root>/results/ablations/table{1,2,3}.{parquet,md,png}, bpe.{parquet,md,png}

Which arms, how the paper's settings map to the chosen scale, and the paper's numbers live in
`evaluation/ablations.py`. Shard sets are built first, one after another (arms share them);
then the arms fan out on the chosen task runner (threads locally, one at a time by default;
`ray` on a cluster runs them side by side). A rerun skips every arm whose `arm.json` holds
the same settings and shard set identity (tokenizer hash, shard params, corpus input sizes),
and resumes an interrupted pretrain run. An arm that fails is reported as failed (in the
tables and the result's `failed`) while the other arms finish; arguments and task data are
checked before any shard set is built.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.finetune_eval import SYNTHETIC_DATA, check_inputs
from flows.runtime import make_task_runner
from runroot import layout, storage

SYNTHETIC_TASKS = "sst2,squad2"     # the ablations' default tasks on stand-in data
REAL_TASKS = "mnli,sst2,squad1,squad2,race"
SYNTHETIC_STANDINS = ("sst2", "squad1", "squad2", "race")


def _link(path: Path, target: Path) -> None:
    """`path` -> `target` as a symlink, replacing a stale link (never a real directory)."""
    if path.is_symlink():
        if Path(os.readlink(path)) == target:
            return
        path.unlink()
    elif path.exists():
        raise FileExistsError(f"{path} exists and is not a link to {target}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)


# ---------------------------------------------------------------- shard sets

@task(name="prepare-shards", task_run_name="shards-{data}")
def prepare_data(root: str, data: str, arm: dict, scale: dict, shard_workers: int | None) -> str:
    """`<root>/ablations/_data/<data>/`: the corpus (linked), the tokenizer (linked, or a
    character-level BPE trained here) and the arm's shards (shard-corpus; skipped when done)."""
    from flows.shard_corpus import shard_corpus_flow

    base = Path(root)
    d = layout.ablation_data(base, data)
    _link(d / layout.CORPUS, base / layout.CORPUS)
    if arm["tokenizer"] == "char":
        from corpus.char_bpe import train_char_tokenizer

        if (d / layout.TOKENIZER).is_symlink():
            (d / layout.TOKENIZER).unlink()
        train_char_tokenizer(d, vocab_size=scale["char_vocab"], seed=scale["seed"])
    else:
        _link(d / layout.TOKENIZER, base / layout.TOKENIZER)
    shard_corpus_flow(root=str(d), format=arm["format"], block_size=scale["block_size"],
                      valid_fraction=scale["valid_fraction"],
                      static_masks=scale["static_masks"] if arm["masking"] == "static" else 0,
                      seed=scale["seed"], workers=shard_workers)
    return str(d)


def prepare_shard_sets(base: Path, arms: list, scale, shard_workers: int | None) -> dict[str, str]:
    """Every shard set the arms need, built one after another (arms share them). Returns
    {data id: error} for the sets that failed: their arms fail, the others still run."""
    from evaluation.ablations import data_id

    shard_sets = {}
    for arm in arms:
        shard_sets.setdefault(data_id(arm, scale), arm)
    errors = {}
    for data, arm in shard_sets.items():
        try:
            prepare_data(str(base), data, dataclasses.asdict(arm), scale.to_dict(), shard_workers)
        except Exception as exc:   # noqa: BLE001 - its arms fail; the others still run
            get_run_logger().error("ablations: shard set %s failed: %s: %s", data,
                                   type(exc).__name__, exc)
            errors[data] = f"shard set {data}: {type(exc).__name__}: {exc}"
    return errors


# ---------------------------------------------------------------- one arm

def finished_arm(done_file: Path, key: dict) -> dict | None:
    """The arm's recorded result when `arm.json` holds this key (settings, finetune options
    and data identity), else None: the arm must (re)run."""
    if not done_file.exists():
        return None
    old = json.loads(done_file.read_text())
    return old if old.get("key") == key else None


def failed_arm(settings: dict, error: BaseException | str) -> dict:
    """A result for an arm that could not finish: no numbers, its error shown in the tables."""
    msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {"settings": settings, "error": " ".join(msg.split())[:500], "ppl": None,
            "valid_loss": None, "vocab_size": None, "scores": {}, "metrics": {},
            "run_dir": None, "skipped": False}


@task(name="ablation-arm", task_run_name="arm-{settings[arm]}")
def run_arm(root: str, settings: dict, finetune: dict, train: dict) -> dict:
    """One arm: pretrain on its shard set (resumed if interrupted), finetune-eval on the
    tasks, `arm.json` last. Skipped when `arm.json` holds the same settings, finetune options
    and shard set identity (tokenizer hash, shard params and corpus inputs). An arm that fails
    (diverged training, bad config) returns a failed result instead of raising, so the other
    arms and the tables still finish."""
    try:
        return _run_arm(root, settings, finetune, train)
    except Exception as exc:     # noqa: BLE001 - one arm's failure must not sink the others
        get_run_logger().error("ablations: arm %s failed: %s: %s", settings["arm"],
                               type(exc).__name__, exc)
        return failed_arm(settings, exc)


def arm_pretrain_config(arm_root: Path, settings: dict, run: str):
    """One arm's pretrain run: its scale's sizes, masking and peak lr, a checkpoint and a
    validation only at the end (the arm's perplexity)."""
    from training.pretrain_config import PretrainConfig

    return PretrainConfig.for_run(
        arm_root, settings["config"], run=run, steps=settings["steps"],
        batch_size=settings["batch_size"], micro_batch_size=settings["micro_batch_size"],
        checkpoint_every=0, keep_last=1, valid_every=0,
        valid_batches=settings["valid_batches"], seed=settings["seed"],
        masking=settings["masking"],
        optim_overrides={"peak_lr": settings["lr"], "warmup_steps": settings["warmup_steps"]})


def _run_arm(root: str, settings: dict, finetune: dict, train: dict) -> dict:
    from evaluation.ablations import arm_key

    arm_root = layout.arm_root(root, settings["arm"])
    done_file = arm_root / layout.ARM_DONE
    data = layout.ablation_data(root, settings["data"])
    manifest = json.loads((data / layout.SHARDS_MANIFEST).read_text())
    key = arm_key(settings, finetune, manifest)
    old = finished_arm(done_file, key)
    if old is not None:
        get_run_logger().info("ablations: arm %s already done, skipped", settings["arm"])
        return dict(old, skipped=True)
    for name in (layout.CORPUS, layout.TOKENIZER, layout.SHARDS):
        _link(arm_root / name, data / name)
    run_dir, checkpoint = _pretrain_arm(arm_root, settings, manifest, train)
    valid_loss = _last_valid_loss(run_dir)
    evaluation = _finetune_arm(arm_root, checkpoint, finetune)
    scores, metrics = _scores(evaluation["rows"])
    result = {"key": key, "settings": settings, "run_dir": str(run_dir),
              "checkpoint": str(checkpoint), "valid_loss": valid_loss,
              "ppl": math.exp(valid_loss) if valid_loss is not None else None,
              "vocab_size": manifest["vocab_size"], "scores": scores, "metrics": metrics,
              "failed_jobs": evaluation.get("failed_jobs", 0)}
    tasks = [t for t in finetune["tasks"].split(",") if t]
    if valid_loss is not None and all(t in scores for t in tasks):
        storage.save_json(done_file, result, default=str)   # incomplete arms rerun
    return dict(result, skipped=False)


def _pretrain_arm(arm_root: Path, settings: dict, manifest: dict,
                  train: dict) -> tuple[Path, Path]:
    """(run dir, final checkpoint) of the arm's pretrain run, trained (or resumed) unless it
    is finished. The run name covers the shard set's identity too: a checkpoint trained on
    another tokenizer or corpus is never resumed or reused."""
    from evaluation.ablations import data_identity, settings_hash
    from flows.pretrain import pretrain, run_state

    run = f"run-{settings_hash(dict(settings, data_identity=data_identity(manifest)))}"
    config = arm_pretrain_config(arm_root, settings, run)
    state, checkpoint = run_state(config, settings["steps"])
    if state != "done":
        out = pretrain(config=config, workers=train["workers"], gpu=train["gpu"],
                       address=train["address"], resume=state == "resume",
                       use_ray=train["use_ray"])
        checkpoint = Path(out["checkpoint"])
    return config.run_dir, checkpoint


def _last_valid_loss(run_dir: Path) -> float | None:
    from training.metrics_log import read_metrics

    vals = [m["valid_loss"] for m in read_metrics(run_dir) if m.get("valid_loss") is not None]
    return float(vals[-1]) if vals else None


def _finetune_arm(arm_root: Path, checkpoint: Path, finetune: dict) -> dict:
    from flows.finetune_eval import finetune_eval

    return finetune_eval(root=str(arm_root), data_dir=finetune["data_dir"],
                         tasks=finetune["tasks"], checkpoint=str(checkpoint),
                         seeds=finetune["seeds"], lrs=finetune["lrs"],
                         batch_sizes=finetune["batch_sizes"], epochs=finetune["epochs"],
                         limit=finetune["limit"], device=finetune["device"],
                         runner=finetune["runner"], workers=1,
                         ray_address=finetune["ray_address"])


def _scores(rows: list[dict]) -> tuple[dict, dict]:
    """(primary metric per task, every metric per task) of the arm's finished results."""
    from evaluation.tasks import get_task

    scores, metrics = {}, {}
    for r in rows:
        spec = get_task(r["task"])
        if r.get("value") is not None and not r.get("error"):
            metrics.setdefault(spec.name, {})[r["metric"]] = r["value"]
            if r["metric"] == spec.primary_metric:
                scores[spec.name] = r["value"]
    return scores, metrics


@flow(name="ablation-arms")
def run_arms(root: str, settings: list[dict], finetune: dict, train: dict) -> list[dict]:
    futures = run_arm.map(unmapped(root), settings, unmapped(finetune), unmapped(train))
    return [f.result() for f in futures]


# ---------------------------------------------------------------- tables

def write_tables(root: Path, tables: list[str], results: dict[str, dict], tasks: list[str],
                 scale: dict) -> dict[str, dict[str, str]]:
    """`<root>/results/ablations/<name>.{parquet,md,png}` per table, and Prefect artifacts."""
    from evaluation.ablations import build_table
    from evaluation.tasks import get_task

    out_dir = root / layout.ABLATION_TABLES
    metrics = {t: get_task(t).primary_metric for t in tasks}
    shown = {k: scale[k] for k in ("config", "batch_size", "steps", "lr", "block_size",
                                   "byte_vocab", "char_vocab", "static_masks")}
    written = {}
    for t in tables:
        name = "bpe" if t == "bpe" else f"table{t}"
        _write_table(out_dir, name, t, build_table(t, results, tasks), tasks, shown, metrics)
        written[name] = {ext: str(out_dir / f"{name}.{ext}") for ext in ("parquet", "md", "png")}
    return written


def _write_table(out_dir: Path, name: str, table_id: str, rows: list[dict], tasks: list[str],
                 shown: dict, metrics: dict) -> None:
    from evaluation.ablations import plot_table, to_markdown

    storage.write_table_atomic(*storage.resolve(out_dir / f"{name}.parquet"), _arrow_table(rows))
    md = to_markdown(table_id, rows, tasks, shown, metrics)
    storage.save_text(out_dir / f"{name}.md", md)
    plot_table(table_id, rows, tasks, out_dir / f"{name}.png")
    create_table_artifact(key=f"ablations-{name}", table=[
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows], description=md.splitlines()[0].lstrip("# "))
    create_markdown_artifact(key=f"ablations-{name}-report",
                             markdown=md + f"\nChart: `{out_dir / (name + '.png')}`\n")


def _arrow_table(rows: list[dict]):
    """The rows as an Arrow table; a `paper_*` column holding any text is all text (Arrow
    columns have one type)."""
    import pyarrow as pa

    cols = {k: [r.get(k) for r in rows] for k in rows[0]}
    return pa.table({k: pa.array([None if v is None else str(v) for v in vals])
                     if k.startswith("paper_") and any(isinstance(v, str) for v in vals)
                     else pa.array(vals) for k, vals in cols.items()})


# ---------------------------------------------------------------- the flow

def byte_vocab(base: Path) -> int:
    """The run root's byte-level vocabulary; its corpus and tokenizer must be there."""
    from corpus import bpe

    if not (base / layout.DOCUMENTS).is_dir():
        raise FileNotFoundError(f"no corpus at {base / layout.DOCUMENTS}: run build-corpus "
                                "(or pipeline) on this root first")
    info = bpe.load_info(base)
    if info is None:
        raise FileNotFoundError(f"no tokenizer at {base / layout.TOKENIZER}: run "
                                "train-tokenizer first")
    return int(info["vocab_size"])


def finetune_options(base: Path, data_dir: str, tasks: str | None, **sweep) -> dict:
    """The arms' finetune-eval options (the task data, the tasks, the sweep, where jobs
    run), every argument and input checked; `synthetic` task data is generated here."""
    from evaluation.synthetic import write_standin_tasks

    if data_dir == SYNTHETIC_DATA:
        eval_data = write_standin_tasks(base / layout.ABLATIONS / layout.EVAL_DATA,
                                        SYNTHETIC_STANDINS)
        tasks = tasks or SYNTHETIC_TASKS
    else:
        eval_data = Path(data_dir)
        tasks = tasks or REAL_TASKS
    _, specs, _ = check_inputs(base, eval_data, tasks, nightly=True, lrs=sweep["lrs"],
                               batch_sizes=sweep["batch_sizes"], epochs=sweep["epochs"],
                               limit=sweep["limit"])
    return {"data_dir": str(eval_data), "tasks": ",".join(s.name for s in specs), **sweep}


def run_all_arms(base: Path, arms: list, scale, data_errors: dict[str, str], finetune: dict,
                 train: dict, task_runner) -> list[dict]:
    """Every arm whose shard set was built, on `task_runner`; the others as failed arms."""
    from evaluation.ablations import arm_settings

    all_settings = [arm_settings(arm, scale) for arm in arms]
    settings = [s for s in all_settings if s["data"] not in data_errors]
    results = run_arms.with_options(task_runner=task_runner)(
        str(base), settings, finetune, train) if settings else []
    return results + [failed_arm(s, data_errors[s["data"]]) for s in all_settings
                      if s["data"] in data_errors]


def report_arms(base: Path, table_ids: list[str], results: list[dict], scale: dict,
                tasks: list[str]) -> dict:
    """Write the tables; the flow's result: tables, skipped, failed and finished arms."""
    by_arm = {r["settings"]["arm"]: r for r in results}
    tables = write_tables(base, table_ids, by_arm, tasks, scale)
    skipped = [r["settings"]["arm"] for r in results if r.get("skipped")]
    if skipped:
        get_run_logger().info("ablations: already done, skipped: %s", ", ".join(skipped))
    return {"tables": tables, "skipped": skipped,
            "failed": {a: r["error"] for a, r in by_arm.items() if r.get("error")},
            "ran": [r["settings"]["arm"] for r in results
                    if not r.get("skipped") and not r.get("error")],
            "scale": scale, "tasks": tasks,
            "arms": {a: {k: r.get(k) for k in ("ppl", "scores", "vocab_size", "run_dir")}
                     for a, r in by_arm.items()}}


@flow(name="ablations")
def ablations(root: str = layout.DEFAULT_ROOT, tables: str = "1,2,3,bpe", config: str = "tiny",
              steps: int | None = None, batch_size: int | None = None,
              micro_batch_size: int | None = None, lr: float | None = None,
              block_size: int = 128, static_masks: int = 10, char_vocab: int | None = None,
              valid_sequences: int = 256, valid_fraction: float = 0.02,
              tasks: str | None = None, data_dir: str = SYNTHETIC_DATA,
              seeds: list[int] | None = None, lrs: list[float] | None = None,
              finetune_batch_sizes: list[int] | None = None, epochs: int | None = None,
              limit: int | None = None, device: str | None = None,
              runner: str = "threads", workers: int | None = 1, ray_address: str | None = None,
              train_workers: int = 1, gpu: bool = False, address: str | None = None,
              use_ray: bool = True, shard_workers: int | None = None, seed: int = 0) -> dict:
    """Rerun the paper's Section 4 comparisons on `<root>`'s corpus at a chosen scale.

    Args:
        root: a run root with `corpus/documents` and `tokenizer/` (the byte-level BPE).
        tables: which comparisons: any of 1 (masking), 2 (input format/NSP), 3 (batch size),
            bpe (§4.4 character- vs byte-level BPE).
        config: model preset (tiny | small | base | large).
        steps, batch_size, lr: the base arm's updates S, sequences per update b and peak lr L
            (Table 3 adds 8b x S/8 @ 7L and 32b x S/32 @ 10L). Defaults: b = preset batch / 32
            (at least 8), S = preset steps, L = preset peak lr / 10.
        micro_batch_size: per forward/backward (default gcd(b, 16)).
        block_size, static_masks: tokens per block (the paper: 512); K of Table 1's static
            arm (the paper: 10).
        char_vocab: §4.4's character-level vocabulary (default 0.6 x the root tokenizer's).
        valid_sequences, valid_fraction: held-out sequences per perplexity; share of documents
            held out.
        tasks, data_dir: finetune tasks (default: sst2,squad2 with synthetic data, else
            mnli,sst2,squad1,squad2,race); their data, or `synthetic` for generated stand-ins.
        seeds, lrs, finetune_batch_sizes, epochs, limit, device: finetune-eval sweep overrides
            (default: the paper's Table 10 grid).
        runner, workers, ray_address: task runner for the arms (threads | processes | ray).
        train_workers, gpu, address, use_ray: pretrain on Ray Train (or in-process).
        shard_workers, seed: shard-corpus encoding processes; pretraining, shard and masking seed.
    """
    from evaluation.ablations import Scale, arms_for, parse_tables

    base = Path(root).resolve()
    vocab = byte_vocab(base)
    table_ids = parse_tables(tables)
    arms = arms_for(table_ids)
    scale = Scale.make(config, batch_size=batch_size, steps=steps, lr=lr,
                       micro_batch_size=micro_batch_size, byte_vocab=vocab,
                       char_vocab=char_vocab, block_size=block_size, static_masks=static_masks,
                       valid_sequences=valid_sequences, valid_fraction=valid_fraction, seed=seed)
    scale.check(arms)
    # Every argument and input is checked before any shard set is built or arm runs.
    finetune = finetune_options(
        base, data_dir, tasks, seeds=seeds, lrs=lrs, batch_sizes=finetune_batch_sizes,
        epochs=epochs, limit=limit, device=device,
        runner="ray" if runner == "ray" else "threads", ray_address=ray_address)
    get_run_logger().info("ablations: tables %s, %d arms at %s", table_ids, len(arms),
                          scale.to_dict())
    data_errors = prepare_shard_sets(base, arms, scale, shard_workers)
    train = {"workers": train_workers, "gpu": gpu, "address": address, "use_ray": use_ray}
    results = run_all_arms(base, arms, scale, data_errors, finetune, train,
                           make_task_runner(runner, workers, ray_address))
    return report_arms(base, table_ids, results, scale.to_dict(), finetune["tasks"].split(","))


__all__ = ["ablations", "run_arm", "prepare_data", "write_tables", "finished_arm", "failed_arm"]
