"""From job results to the reported figures, as the paper does (Appendix C, §5.1): for every
(lr, batch size) the median over seeds of each seed's *best dev epoch* (chosen by the task's
primary metric); the reported configuration is the one with the highest median; each metric
is reported as the median over that configuration's seeds (at each seed's best epoch).

Failed jobs (`error` set, no result, or a non-finite score) are left out of the medians and
counted (`failed_jobs`), and each becomes a row of its own: the primary metric, value None,
its seed and hyperparameters, and its error.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict

from evaluation.tasks import get_task

HP_KEYS = ("lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "max_len")


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


def aggregate(job_results: list[dict]) -> list[dict]:
    """One row per (model_dir, task, metric) with the keys the results table stores:
    model_dir, task, metric, value, seeds, n_seeds, per_seed, lr, batch_size,
    hyperparameters (JSON), time_s (summed over all jobs of the task), error, failed_jobs,
    paper_base, paper_large, reference_split, best_epochs."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in job_results:
        groups[(r.get("model_dir"), r["task"])].append(r)
    rows = []
    for (model_dir, task), jobs in groups.items():
        spec = get_task(task)
        ok = [j for j in jobs if _problem(j) is None]
        failed = [j for j in jobs if _problem(j)]
        time_s = sum(float(j.get("time_s") or 0.0) for j in jobs)
        common = dict(model_dir=model_dir, task=spec.name, time_s=time_s,
                      failed_jobs=len(failed), reference_split=spec.reference_split)
        for j in failed:          # each failed job is a row of its own, with its error
            ref = spec.reference(spec.primary_metric)
            hp = {k: j.get(k) for k in HP_KEYS}
            rows.append(dict(common, metric=spec.primary_metric, value=None,
                             seeds=[j.get("seed")], n_seeds=0, per_seed={}, lr=j.get("lr"),
                             batch_size=j.get("batch_size"),
                             hyperparameters=json.dumps(hp, sort_keys=True),
                             time_s=float(j.get("time_s") or 0.0),
                             error=_problem(j), paper_base=ref.base,
                             paper_large=ref.large, best_epochs={}))
        if not ok:
            continue
        by_config: dict[tuple, list[dict]] = defaultdict(list)
        for j in ok:
            by_config[(j["lr"], j["batch_size"])].append(j)

        def median_of(cfg_jobs, metric):
            vals = [j["best"][metric] for j in cfg_jobs if metric in j["best"]]
            return statistics.median(vals) if vals else float("-inf")

        # Highest median of the primary metric; ties go to the smaller lr, then batch size.
        (lr, bs), chosen = max(by_config.items(),
                               key=lambda kv: (median_of(kv[1], spec.primary_metric),
                                               -kv[0][0], -kv[0][1]))
        chosen = sorted(chosen, key=lambda j: j["seed"])
        hp = {k: chosen[0].get(k) for k in HP_KEYS}
        for m in spec.metrics:
            per_seed = {j["seed"]: j["best"][m] for j in chosen if m in j["best"]}
            ref = spec.reference(m)
            rows.append(dict(
                common, metric=m,
                value=statistics.median(per_seed.values()) if per_seed else None,
                seeds=sorted(per_seed), n_seeds=len(per_seed), per_seed=per_seed,
                lr=lr, batch_size=bs, hyperparameters=json.dumps(hp, sort_keys=True),
                error=None, paper_base=ref.base, paper_large=ref.large,
                best_epochs={j["seed"]: j["best_epoch"] for j in chosen}))
    return rows


__all__ = ["aggregate"]
