"""train-tokenizer and shard-corpus as a user runs them: the CLI, Prefect ephemeral, real files."""
import json
import subprocess
import sys

import pytest

from tests._shards_corpus import english_documents, write_corpus

pytestmark = pytest.mark.slow


def roberta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_tokenizer_then_shards_then_rerun_skips(tmp_path):
    write_corpus(tmp_path, english_documents(120))
    run = roberta("train-tokenizer", "--root", str(tmp_path), "--vocab-size", "2000")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2,000 ids (<mask>=1999)" in run.stdout
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        assert (tmp_path / "tokenizer" / name).exists()

    run = roberta("shard-corpus", "--root", str(tmp_path), "--block-size", "128",
                  "--format", "doc-sentences", "--valid-fraction", "0.1")
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["format"] == "doc-sentences" and manifest["block_size"] == 128
    assert manifest["splits"]["train"]["blocks"] > 0 and manifest["splits"]["valid"]["blocks"] > 0
    assert f"train: {manifest['splits']['train']['blocks']:,} blocks" in run.stdout

    parts = sorted((tmp_path / "shards" / "train").glob("*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in parts]
    again = roberta("shard-corpus", "--root", str(tmp_path), "--block-size", "128",
                    "--format", "doc-sentences", "--valid-fraction", "0.1")
    assert again.returncode == 0
    assert [p.stat().st_mtime_ns for p in parts] == mtimes  # finished work is not redone


def test_stages_out_of_order_are_clear_errors(tmp_path):
    run = roberta("train-tokenizer", "--root", str(tmp_path))
    assert run.returncode == 2 and "corpus" in run.stderr
    run = roberta("shard-corpus", "--root", str(tmp_path))
    assert run.returncode == 2 and "run train-tokenizer first" in run.stderr
