"""The `import-corpus` flow: non-WARC inputs (Wikipedia dumps, OpenWebText archives, text,
JSONL, Parquet) → per-input shards (fan-out) → the global dedup over every shard under the
run root, WARC-built ones included, so a document found in two sources is kept once.

Thin like build-corpus: the readers and the per-file step live in `corpus/`.
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from corpus.config import CorpusConfig
from flows.build_corpus import corpus_options, deduplicate_corpus
from flows.fan_out import fan_out, process_input_file, total_counts
from flows.runtime import make_task_runner
from runroot import layout, storage


@task(name="import-file")
def import_input(location: str, root: str, name: str, fmt: str, columns: dict, options: dict,
                 keep_downloads: bool, download_retries: int) -> dict:
    """One input file → `corpus/shards/<input-id>.parquet` + manifest. Skips inputs
    finished with the same content (size, mtime) and parameters; reimports the others,
    replacing their output."""
    from corpus.import_inputs import ImportSource, fetch_import
    from corpus.import_pipeline import (finished_import, import_fingerprint, input_stat,
                                        process_import)
    from corpus.importers import Columns
    from flows.progress import input_progress

    source = ImportSource(location)
    cfg, cols = CorpusConfig.from_dict(options), Columns(**columns)
    fingerprint = import_fingerprint(input_stat(location), name, fmt, cols, cfg)

    def process(local) -> dict:
        with input_progress(source.input_id, location, local) as reporter:
            return process_import(
                local, root, name, cfg, fmt=fmt, columns=cols, input_name=location,
                input_id=source.input_id, fingerprint=fingerprint,
                progress=reporter and (lambda records, outcome: reporter.record(records)))

    return process_input_file(
        root, keep_downloads,
        finished=lambda: finished_import(root, source.input_id, fingerprint),
        fetch=lambda downloads: fetch_import(source, downloads, retries=download_retries),
        process=process)


@flow(name="import-corpus")
def import_corpus(inputs: list[str], name: str, root: str = layout.DEFAULT_ROOT,
                  format: str = "auto",
                  text_column: str = "text", id_column: str | None = "id",
                  url_column: str | None = "url", title_column: str | None = "title",
                  runner: str = "processes", workers: int | None = None,
                  ray_address: str | None = None, options: dict | None = None,
                  keep_downloads: bool = False, download_retries: int = 4) -> dict:
    """Import files as corpus `name` under `<root>/corpus/`, then deduplicate every shard
    there (all sources together).

    Args:
        inputs: files, directories, globs, http(s) URLs or pyarrow-filesystem URIs (s3://...).
        name: the source name stored per document (`corpus_name`), e.g. wikipedia,
            openwebtext, bookcorpus, stories; mixture weights refer to it.
        root: the run root.
        format: auto (by file name), text, text-blank-lines, jsonl, parquet, owt, wikipedia.
        text_column / id_column / url_column / title_column: JSONL/Parquet fields (the
            optional ones are used when present).
        runner: `threads`, `processes` or `ray` (fan-out over input files).
        workers: parallel workers (default: CPU cores).
        ray_address: Ray cluster address for `runner="ray"`.
        options: CorpusConfig overrides (languages, lang_threshold, min_words, ...).
        keep_downloads: keep fetched remote files after processing.
        download_retries: retries (exponential backoff) per remote file.
    """
    from corpus.import_inputs import resolve_import_inputs
    from corpus.importers import FORMATS

    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    if not name or any(c in name for c in "=,/ "):
        raise ValueError(f"bad corpus name {name!r}: a short word such as 'wikipedia'")
    options = corpus_options(**(options or {}))
    columns = {"text": text_column, "id": id_column, "url": url_column, "title": title_column}
    sources = resolve_import_inputs(inputs)
    get_run_logger().info("import-corpus %s: %d input files → %s", name, len(sources), root)
    manifests, failed = fan_out(
        "import-corpus-shards", import_input, [s.location for s in sources],
        make_task_runner(runner, workers, ray_address), "imported", root=root, name=name,
        fmt=format, columns=columns, options=options, keep_downloads=keep_downloads,
        download_retries=download_retries)
    report = deduplicate_corpus(root, options)
    summary = summarize_import(manifests, failed, report, root, name)
    summary["documents_by_source"] = documents_by_source(root)
    _publish(summary)
    return summary


def summarize_import(manifests: list[dict], failed: list[dict], report: dict, root: str,
                     name: str) -> dict:
    """Outcomes of this run's records; dedup counts are over the whole corpus (every
    source), so they are reported beside them rather than subtracted from `kept`."""
    return {"name": name, **total_counts(manifests), "failed_inputs": failed,
            "damaged_inputs": [m["input"] for m in manifests if m.get("damaged")],
            "dedup": report["counts"], "documents": report["counts"]["documents_kept"],
            "documents_dir": storage.under(root, layout.DOCUMENTS)}


def documents_by_source(root: str) -> dict[str, int]:
    """Documents per corpus_name in the deduplicated corpus."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    fs, base = storage.resolve(root)
    table = ds.dataset(storage.join(base, layout.DOCUMENTS), filesystem=fs,
                       format="parquet").to_table(columns=["corpus_name"])
    counts = pc.value_counts(table.column("corpus_name").fill_null("cc-news"))
    return {c["values"]: c["counts"] for c in counts.to_pylist()}


def _publish(summary: dict) -> None:
    rows = [{"outcome": k, "records": v} for k, v in
            sorted(summary["outcomes"].items(), key=lambda kv: -kv[1]) if v]
    create_table_artifact(key="import-corpus-outcomes", table=rows,
                          description=f"{summary['name']}: {summary['records']:,} records from "
                          f"{summary['inputs']} files; corpus now {summary['documents']:,} documents")
    lines = ["# Corpus by source (after dedup)", "", "| source | documents |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(summary["documents_by_source"].items())]
    if summary["damaged_inputs"]:
        lines += ["", "# Damaged inputs (read only up to the damage)", ""]
        lines += [f"- {i}" for i in summary["damaged_inputs"]]
    if summary["errors"]:
        lines += ["", "# Damaged records", "", "| file | where | error |", "|---|---|---|"]
        lines += [f"| {e.get('file')} | {e.get('where', e.get('offset'))} | {e.get('message')} |"
                  for e in summary["errors"][:100]]
    create_markdown_artifact(key="import-corpus-report", markdown="\n".join(lines))
