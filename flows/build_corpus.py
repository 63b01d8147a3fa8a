"""The `build-corpus` flow: WARC inputs → per-input shards (fan-out) → global dedup.

Thin by design: the algorithm lives in `corpus/`; this module adds the fan-out, retries,
skip-if-done, and the Prefect artifacts people read.
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from runroot import layout, storage
from corpus.config import CorpusConfig
from corpus.inputs import CC_BASE_URL, WarcSource, fetch, remove_download, resolve_inputs
from flows.runtime import gather_manifests, make_task_runner


class BuildCorpusError(RuntimeError):
    """The run produced nothing: every input failed."""


def corpus_options(**overrides) -> dict:
    """CorpusConfig overrides from CLI-style keyword arguments, dropping unset ones."""
    renamed = {"near_dup_threshold": "dedup_threshold"}
    out = {renamed.get(k, k): v for k, v in overrides.items() if v is not None}
    CorpusConfig.from_dict(out)  # fail here, naming the field, not inside a worker
    return out


@task(name="process-warc")
def process_input(location: str, root: str, options: dict, keep_downloads: bool,
                  download_retries: int) -> dict:
    """One WARC → `corpus/shards/<input-id>.parquet` + manifest. Skips finished inputs.

    No Prefect-level retries: downloads retry with backoff inside `fetch`, and damaged
    records are counted by `process_warc`, so a failure here is final for this run."""
    from corpus.input_shard import is_done, output_paths
    from corpus.warc_file import process_warc

    source = WarcSource(location)
    if is_done(root, source.input_id):  # rerun: finished inputs are not fetched again
        fs, _, manifest_file = output_paths(root, source.input_id)
        return storage.read_json(fs, manifest_file)
    downloads = layout.downloads_dir(root)
    local = fetch(source, downloads, retries=download_retries)
    manifest = process_warc(local, root, CorpusConfig.from_dict(options),
                            input_id=source.input_id, source_name=location)
    if not keep_downloads:
        remove_download(local, downloads)
    return manifest


@task(name="deduplicate")
def deduplicate_corpus(root: str, options: dict) -> dict:
    from corpus.dedup import deduplicate

    return deduplicate(root, CorpusConfig.from_dict(options))


@flow(name="build-corpus-shards")
def extract_shards(locations: list[str], root: str, options: dict, keep_downloads: bool,
                   download_retries: int) -> tuple[list[dict], list[dict]]:
    """The fan-out: one task per WARC; a failed input becomes a row, never a failed flow."""
    logger = get_run_logger()
    futures = process_input.map(locations, root=unmapped(root), options=unmapped(options),
                                keep_downloads=unmapped(keep_downloads),
                                download_retries=unmapped(download_retries))
    return gather_manifests(futures, locations, logger)


@flow(name="build-corpus")
def build_corpus(inputs: list[str] | None = None, root: str = "runs/default",
                 runner: str = "processes",
                 workers: int | None = None, ray_address: str | None = None,
                 options: dict | None = None, keep_downloads: bool = False,
                 cc_news_months: str | None = None, cc_news_base_url: str = CC_BASE_URL,
                 cc_news_limit: int | None = None, download_retries: int = 4) -> dict:
    """Build the corpus under `<root>/corpus/` from WARC inputs.

    Args:
        inputs: WARC files, directories, globs, http(s) URLs, pyarrow-filesystem URIs
            (s3://...), or `cc-news:YYYY-MM[..YYYY-MM]`.
        root: the run root.
        runner: `threads`, `processes` or `ray` (fan-out over WARC files).
        workers: parallel workers (default: CPU cores).
        ray_address: Ray cluster address for `runner="ray"` (default: a local Ray).
        options: CorpusConfig overrides (languages, lang_threshold, min_words,
            dedup_threshold, num_perm, extract_timeout_s, ...).
        keep_downloads: keep fetched remote WARCs after processing.
        cc_news_months: CC-NEWS months to add to the inputs, `YYYY-MM[..YYYY-MM]`.
        cc_news_base_url: base URL of the CC-NEWS listings.
        cc_news_limit: process only the first N CC-NEWS WARCs.
        download_retries: retries (exponential backoff) per remote file.
    """
    options = corpus_options(**(options or {}))
    inputs = list(inputs or []) + ([f"cc-news:{cc_news_months}"] if cc_news_months else [])
    sources = resolve_inputs(inputs, cc_news_base_url=cc_news_base_url,
                             cc_news_limit=cc_news_limit)
    get_run_logger().info("build-corpus: %d input WARC files → %s", len(sources), root)
    task_runner = make_task_runner(runner, workers, ray_address)
    manifests, failed = extract_shards.with_options(task_runner=task_runner)(
        [s.location for s in sources], root, options, keep_downloads, download_retries)
    if not manifests:
        raise BuildCorpusError("no input could be processed: " + "; ".join(
            f"{f['input']}: {f['error']}" for f in failed))
    report = deduplicate_corpus(root, options)
    summary = summarize(manifests, failed, report, root)
    publish_artifacts(summary, report)
    return summary


def summarize(manifests: list[dict], failed: list[dict], report: dict, root: str) -> dict:
    outcomes: dict[str, int] = {}
    for m in manifests:
        for outcome, n in m["counts"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    counts = report["counts"]
    for key in ("exact_duplicates", "near_duplicates"):
        outcomes[f"dedup_{key}"] = counts.get(key, 0)
    outcomes["kept"] = outcomes.get("kept", 0) - sum(
        counts.get(k, 0) for k in ("exact_duplicates", "near_duplicates"))
    return {"inputs": len(manifests), "failed_inputs": failed,
            "records": sum(m["records_read"] for m in manifests),
            "errors": [e for m in manifests for e in m.get("errors", [])],
            "outcomes": outcomes, "documents": counts["documents_kept"],
            "documents_dir": storage.under(root, "corpus", "documents")}


def publish_artifacts(summary: dict, report: dict) -> None:
    rows = [{"outcome": k, "records": v} for k, v in
            sorted(summary["outcomes"].items(), key=lambda kv: -kv[1])]
    create_table_artifact(key="build-corpus-outcomes", table=rows,
                          description=f"{summary['records']:,} records from "
                          f"{summary['inputs']} WARC files; {summary['documents']:,} kept")
    clusters = sorted(report.get("clusters", []), key=lambda c: -len(c["members"]))[:20]
    lines = ["# Largest duplicate clusters", "", "| size | kept | kind |", "|---|---|---|"]
    lines += [f"| {len(c['members'])} | `{c['kept']}` | {c.get('kind', '')} |" for c in clusters]
    if summary["errors"]:
        lines += ["", "# Damaged records", "", "| file | offset | error |", "|---|---|---|"]
        lines += [f"| {e.get('file')} | {e.get('offset')} | {e.get('message')} |"
                  for e in summary["errors"][:100]]
    create_markdown_artifact(key="build-corpus-report", markdown="\n".join(lines))
