"""From job results to the reported figures, as the paper does (Appendix C, §5.1): for every
(lr, batch size) the median over seeds of each seed's *best dev epoch* (chosen by the task's
primary metric); the reported configuration is the one with the highest median; each metric
is reported as the median over that configuration's seeds (at each seed's best epoch).

Failed jobs (`error` set, no result, or a non-finite score) are left out of the medians and
counted (`failed_jobs`), and each becomes a row of its own: the primary metric, value None,
its seed and hyperparameters, and its error.

Every row says what it was measured on (`PROVENANCE`): the task data (its directory, a
fingerprint of its files, whether it is a generated stand-in), the training examples used and
the dev examples scored, and any limit on either; and where its seeds' predictions are.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict

from evaluation.tasks import TaskSpec, get_task

HP_KEYS = ("lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "max_len")
# Set on each job result by the caller that knows the data (flows/finetune_eval.py).
DATA_KEYS = ("data", "data_fingerprint", "standin")
PROVENANCE = (*DATA_KEYS, "n_train", "n_dev", "train_limit", "dev_limit", "predictions")


def _problem(job: dict) -> str | None:
    """Why `job` has no usable score, or None. A non-finite score counts as a failure: NaN
    compares false with everything, so one NaN seed would win or lose the choice at random."""
    if job.get("error"):
        return job["error"]
    if not job.get("best"):
        return "no result"
    bad = {m: v for m, v in job["best"].items()
           if not isinstance(v, (int, float)) or not math.isfinite(v)}
    return f"non-finite score {bad}" if bad else None


def _failed_row(spec: TaskSpec, job: dict, common: dict) -> dict:
    """A failed job's row: its seed, its hyperparameters and its error, no value."""
    ref = spec.reference(spec.primary_metric)
    hp = {k: job.get(k) for k in HP_KEYS}
    return dict(common, metric=spec.primary_metric, value=None, seeds=[job.get("seed")],
                n_seeds=0, per_seed={}, lr=job.get("lr"), batch_size=job.get("batch_size"),
                hyperparameters=json.dumps(hp, sort_keys=True),
                time_s=float(job.get("time_s") or 0.0), error=_problem(job),
                paper_base=ref.base, paper_large=ref.large, best_epochs={},
                train_limit=job.get("limit"), dev_limit=job.get("dev_limit"))


def _best_config(spec: TaskSpec, ok: list[dict]) -> tuple[tuple, list[dict]]:
    """((lr, batch size), its jobs by seed): the highest median of the primary metric; ties
    go to the smaller lr, then batch size."""
    by_config: dict[tuple, list[dict]] = defaultdict(list)
    for j in ok:
        by_config[(j["lr"], j["batch_size"])].append(j)

    def median_primary(jobs):
        return statistics.median(j["best"][spec.primary_metric] for j in jobs)

    config, chosen = max(by_config.items(),
                         key=lambda kv: (median_primary(kv[1]), -kv[0][0], -kv[0][1]))
    return config, sorted(chosen, key=lambda j: j["seed"])


def _metric_rows(spec: TaskSpec, ok: list[dict], common: dict) -> list[dict]:
    """One row per metric of the best configuration: the median over its seeds. A metric no
    seed has (SQuAD 2.0's NoAns on a dev set without unanswerable questions) has no row."""
    (lr, bs), chosen = _best_config(spec, ok)
    first = chosen[0]
    hp = {k: first.get(k) for k in HP_KEYS}
    shared = dict(common, lr=lr, batch_size=bs, hyperparameters=json.dumps(hp, sort_keys=True),
                  error=None, seeds=sorted(j["seed"] for j in chosen),
                  best_epochs={j["seed"]: j["best_epoch"] for j in chosen},
                  n_train=first.get("n_train"), train_limit=first.get("limit"),
                  dev_limit=first.get("dev_limit"),
                  predictions=json.dumps({str(j["seed"]): j["predictions"]["dir"]
                                          for j in chosen if j.get("predictions")}))
    rows = []
    for m in spec.metrics:
        per_seed = {j["seed"]: j["best"][m] for j in chosen if m in j["best"]}
        if not per_seed and m != spec.primary_metric:
            continue
        ref = spec.reference(m)
        rows.append(dict(shared, metric=m, value=statistics.median(per_seed.values()),
                         n_seeds=len(per_seed), per_seed=per_seed,
                         n_dev=(first.get("n_dev") or {}).get(spec.split_of(m)),
                         paper_base=ref.base, paper_large=ref.large))
    return rows


def aggregate(job_results: list[dict]) -> list[dict]:
    """One row per (model_dir, task, metric) with the keys the results table stores:
    model_dir, task, metric, value, seeds, n_seeds, per_seed, lr, batch_size,
    hyperparameters (JSON), time_s (summed over all jobs of the task), error, failed_jobs,
    paper_base, paper_large, reference_split, best_epochs, and the `PROVENANCE` keys."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in job_results:
        groups[(r.get("model_dir"), r["task"])].append(r)
    rows = []
    for (model_dir, task), jobs in groups.items():
        spec = get_task(task)
        ok = [j for j in jobs if _problem(j) is None]
        failed = [j for j in jobs if _problem(j)]
        common = dict(model_dir=model_dir, task=spec.name, failed_jobs=len(failed),
                      time_s=sum(float(j.get("time_s") or 0.0) for j in jobs),
                      reference_split=spec.reference_split,
                      **{k: jobs[0].get(k) for k in DATA_KEYS})
        rows.extend(_failed_row(spec, j, common) for j in failed)
        if ok:
            rows.extend(_metric_rows(spec, ok, common))
    return rows


__all__ = ["aggregate", "PROVENANCE"]
