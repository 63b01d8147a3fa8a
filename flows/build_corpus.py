"""The `build-corpus` flow: WARC inputs → per-input shards (fan-out) → global dedup.

Thin by design: the algorithm lives in `corpus/`; this module adds the fan-out, retries,
skip-if-done, and the Prefect artifacts people read.
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from corpus.config import CorpusConfig
from corpus.inputs import CC_BASE_URL, WarcSource, fetch, resolve_inputs
from flows.fan_out import fan_out, process_input_file, total_counts
from flows.runtime import make_task_runner
from runroot import layout, storage


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
    from flows.progress import input_progress

    source = WarcSource(location)

    def finished() -> dict | None:
        if not is_done(root, source.input_id):
            return None
        fs, _, manifest_file = output_paths(root, source.input_id)
        manifest = storage.read_json(fs, manifest_file)
        # An input that gave nothing usable (empty, not a WARC) is read again: exit 3 says
        # "rerun to retry", and the file may have been fixed in place.
        return None if manifest.get("problem") else manifest | {"skipped": True}

    def process(local) -> dict:
        with input_progress(source.input_id, location, local) as reporter:
            return process_warc(local, root, CorpusConfig.from_dict(options),
                                input_id=source.input_id, source_name=location, force=True,
                                progress=reporter and reporter.record)

    return process_input_file(
        root, keep_downloads, finished=finished,
        fetch=lambda downloads: fetch(source, downloads, retries=download_retries),
        process=process)


@task(name="deduplicate")
def deduplicate_corpus(root: str, options: dict) -> dict:
    from corpus.dedup import deduplicate

    return deduplicate(root, CorpusConfig.from_dict(options))


@flow(name="build-corpus")
def build_corpus(inputs: list[str] | None = None, root: str = layout.DEFAULT_ROOT,
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
    manifests, failed = fan_out(
        "build-corpus-shards", process_input, [s.location for s in sources],
        make_task_runner(runner, workers, ray_address), "processed", root=root,
        options=options, keep_downloads=keep_downloads, download_retries=download_retries)
    report = deduplicate_corpus(root, options)
    summary = summarize(manifests, failed, report, root)
    publish_artifacts(summary, report)
    return summary


def summarize(manifests: list[dict], failed: list[dict], report: dict, root: str) -> dict:
    """This run's outcomes per record, the dedup's removals counted out of `kept`."""
    totals = total_counts(manifests)
    outcomes = totals["outcomes"]
    counts = report["counts"]
    for key in ("exact_duplicates", "near_duplicates"):
        outcomes[f"dedup_{key}"] = counts.get(key, 0)
    outcomes["kept"] = outcomes.get("kept", 0) - sum(
        counts.get(k, 0) for k in ("exact_duplicates", "near_duplicates"))
    return {**totals, "failed_inputs": failed, "documents": counts["documents_kept"],
            "documents_dir": storage.under(root, layout.DOCUMENTS)}


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
