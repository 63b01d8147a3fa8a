"""Continued pretraining (`pretrain --init-from DIR`): a small model trained on the sample crawl
is exported, then trained further on another corpus (Python's documentation) tokenized with
its tokenizer. The first update's loss is the source model's loss on that batch, computed by
transformers from the exported directory; the run lowers it; a resumed continued run follows
the same trajectory and every checkpoint records where it started. Bad starting points are
refused before training, with exit 2 and the file named."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests._pretrain_shards import sample_shards_root
from tests._shards_corpus import english_documents, write_corpus
from tests.conftest import REPO
from training import run_checkpoints
from training.hf_config import checkpoint_sha256
from training.loop import train
from training.pretrain_config import PretrainConfig, PretrainConfigError, resolve

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0}   # the loss equality needs it


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny model trained 30 updates on the sample crawl: its last checkpoint directory,
    the HF layout with the crawl's tokenizer (1,000 ids)."""
    root = sample_shards_root(tmp_path_factory.getbasetemp())
    cfg = PretrainConfig(root=str(root), run="continued-source", model="tiny", batch_size=16,
                         micro_batch_size=16, steps=30, checkpoint_every=0, valid_every=0,
                         optim_overrides={"peak_lr": 2e-3, "warmup_steps": 3})
    if run_checkpoints.latest_checkpoint(cfg.run_dir) is None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)         # module fixtures run before `one_thread`
        try:
            train(cfg)
        finally:
            torch.set_num_threads(threads)
    return run_checkpoints.latest_checkpoint(cfg.run_dir)


def docs_root(path, tokenizer_from=None):
    """Python's documentation as a corpus, tokenized with `tokenizer_from`'s tokenizer (a
    checkpoint directory) or with one trained on it, in blocks of 64 tokens."""
    from corpus.bpe import train_tokenizer, use_existing_tokenizer
    from corpus.sharding import shard_corpus

    write_corpus(path, english_documents())
    if tokenizer_from is None:
        train_tokenizer(path, vocab_size=1000)
    else:
        use_existing_tokenizer(path, tokenizer_from)
    shard_corpus(path, fmt="full-sentences", block_size=64, valid_fraction=0.1, workers=1,
                 rows_per_group=64)
    return path


@pytest.fixture(scope="module")
def other_corpus(source, tmp_path_factory):
    return docs_root(tmp_path_factory.mktemp("docs-adopted"), tokenizer_from=source)


def continued(root, source, run, model=None, **kw) -> PretrainConfig:
    base = dict(init_from=str(source), run=run, steps=12, batch_size=8, micro_batch_size=8,
                checkpoint_every=4, keep_last=5, valid_every=6, valid_batches=4,
                model_overrides=NO_DROPOUT, optim_overrides={"peak_lr": 1e-3})
    return PretrainConfig.for_run(root, model, **{**base, **kw})


def first_batch(cfg: PretrainConfig) -> dict:
    """The masked micro-batch the run's first update trains on, drawn as the loop draws it."""
    from training.loop import _masked_batch
    from training.masking import Masker
    from training.shard_reader import ShardReader

    res = resolve(cfg)
    reader = ShardReader(cfg.root, "train", batch_size=res.micro_batch_size, seed=cfg.seed,
                         shuffle_window=cfg.shuffle_window)
    raw = next(iter(reader))
    return _masked_batch(raw, Masker(res.masking, cfg.seed, res.model.pad_id), res, 0)


def hf_loss(model_dir, batch: dict) -> float:
    """transformers' own RobertaForMaskedLM on the directory: the reference MLM loss."""
    from training.masking import labels_from_batch

    hf = transformers.AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return hf(input_ids=torch.from_numpy(batch["input_ids"]),
                  attention_mask=torch.from_numpy(batch["attention_mask"]).long(),
                  labels=torch.from_numpy(labels_from_batch(batch))).loss.item()


# ------------------------------------------------------------------ the run itself

def test_first_update_has_the_source_models_loss_and_the_run_lowers_it(source, other_corpus):
    cfg = continued(other_corpus, source, None)
    assert cfg.run == f"from-{source.name}"          # the default run name
    batch = first_batch(cfg)
    before = hf_loss(source, batch)
    seen: list[dict] = []
    s = train(cfg, on_metrics=seen.append)

    assert [m["step"] for m in seen] == list(range(1, 13))     # a fresh schedule and counters
    assert abs(seen[0]["mlm_loss"] - before) < 1e-5, (seen[0]["mlm_loss"], before)
    # not what a model of that shape starts from: the weights really came from the source
    scratch = train(cfg.replace(init_from=None, model="tiny", run="scratch"), stop_after=1)
    assert scratch["loss"] - before > 0.3, (scratch["loss"], before)
    after = hf_loss(s["checkpoint"], batch)
    assert after < before - 0.1, (before, after)
    valid = [m["valid_loss"] for m in seen if m.get("valid_loss") is not None]
    assert valid[-1] < valid[0]

    record = {"dir": str(source.resolve()), "sha256": checkpoint_sha256(source)}
    assert s["init_from"] == record
    for _, d in run_checkpoints.list_checkpoints(cfg.run_dir):
        assert json.loads((d / "checkpoint.json").read_text())["init_from"] == record
    from training.metrics_log import summary_rows

    rows = {r["quantity"]: r["value"] for r in summary_rows(s)}
    assert rows["started from"] == f"{source.resolve()} (sha256 {record['sha256'][:16]})"


def test_a_resumed_continued_run_follows_the_same_trajectory(source, other_corpus):
    whole: list[dict] = []
    train(continued(other_corpus, source, "whole"), on_metrics=whole.append)
    cfg = continued(other_corpus, source, "interrupted")
    parts: list[dict] = []
    train(cfg, on_metrics=parts.append, stop_after=5)
    # the source is not read again on resume: its weights are in the run's checkpoint now
    s = train(cfg, resume_from="latest", on_metrics=parts.append)
    assert [m["step"] for m in parts] == list(range(1, 13)) and s["finished"]
    assert [m["loss"] for m in parts] == [m["loss"] for m in whole]
    last = run_checkpoints.latest_checkpoint(cfg.run_dir)
    assert json.loads((last / "checkpoint.json").read_text())["init_from"]["dir"] == \
        str(source.resolve())
    assert s["init_from"]["sha256"] == checkpoint_sha256(source)


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_a_transformers_written_directory_starts_a_run(source, other_corpus, tmp_path, weights):
    """RobertaForMaskedLM.save_pretrained's directory (safetensors); transformers 5 no longer
    writes pytorch_model.bin, so that one is its state dict saved as transformers 4 did."""
    hcfg = transformers.RobertaConfig(
        vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    hf = transformers.RobertaForMaskedLM(hcfg)
    hf.save_pretrained(tmp_path)
    if weights == "pytorch_model.bin":
        (tmp_path / "model.safetensors").unlink()
        torch.save(hf.state_dict(), tmp_path / weights)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(source / name, tmp_path / name)
    cfg = continued(other_corpus, tmp_path, f"hf-{weights}", model_overrides={}, steps=1)
    res = resolve(cfg)
    assert (res.model.num_layers, res.model.hidden_size, res.model.max_positions) == (2, 32, 64)
    s = train(cfg)
    assert abs(s["loss"] - hf_loss(tmp_path, first_batch(cfg))) < 1e-5


# ------------------------------------------------------------------ the defaults and checks

def test_continued_recipe_defaults_follow_dont_stop_pretraining(source, other_corpus):
    # DAPT (Gururangan et al. 2020, Appendix B, Table 13): 12.5K updates of 2,048 sequences,
    # peak LR 5e-4, 6% warm-up; batches of 256 used 1e-4
    res = resolve(PretrainConfig.for_run(other_corpus, None, init_from=str(source)))
    o = res.optim
    assert (o.total_steps, o.batch_size, o.peak_lr, o.warmup_steps) == (12_500, 2048, 5e-4, 750)
    assert (o.betas, o.eps, o.weight_decay, o.end_lr) == ((0.9, 0.98), 1e-6, 0.01, 0.0)
    small = resolve(PretrainConfig.for_run(other_corpus, None, init_from=str(source),
                                           steps=200, batch_size=256)).optim
    assert (small.peak_lr, small.warmup_steps, small.total_steps) == (1e-4, 12, 200)
    given = resolve(continued(other_corpus, source, "x", optim_overrides={
        "peak_lr": 3e-4, "warmup_steps": 5})).optim
    assert (given.peak_lr, given.warmup_steps) == (3e-4, 5)
    named = resolve(continued(other_corpus, source, "x", optim="tiny", optim_overrides={}))
    assert named.optim.peak_lr == 1e-3 and named.model.hidden_size == 64   # the tiny preset's


def test_the_shape_comes_from_the_checkpoint(source, other_corpus):
    res = resolve(continued(other_corpus, source, "x", model="tiny"))   # the same shape: fine
    assert (res.model.num_layers, res.model.hidden_size, res.model.dropout) == (2, 64, 0.0)
    with pytest.raises(PretrainConfigError) as exc:
        resolve(continued(other_corpus, source, "x", model="small"))
    assert "'small' is 4 layers x 256 hidden" in str(exc.value)
    assert f"{source}/config.json is 2 layers x 64 hidden" in str(exc.value)
    with pytest.raises(PretrainConfigError, match=r"hidden_size=128 \(.*config.json has 64\)"):
        resolve(continued(other_corpus, source, "x", model_overrides={"hidden_size": 128}))


# ------------------------------------------------------------------ refused at the CLI

def cli(capsys, *argv) -> tuple[int, str]:
    from flows.cli import main

    code = main(["pretrain", "--no-ray", "--steps", "2", "--batch-size", "8", *map(str, argv)])
    return code, capsys.readouterr().err


def test_shards_of_another_tokenizer_are_refused_with_the_fix(source, tmp_path):
    """A real `roberta pretrain` process: exit 2 before Prefect starts, the command that
    fixes it; after that fix the same run is accepted."""
    from flows.pretrain import check_inputs

    root = docs_root(tmp_path / "own-tokenizer")      # its own 1,000-id tokenizer
    home = tmp_path / "prefect"
    home.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "pretrain", "--root", str(root), "--init-from",
         str(source), "--steps", "2", "--batch-size", "8", "--no-ray"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PREFECT_HOME": str(home)})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and not list(home.glob("prefect.db*"))
    assert "not tokenized with the --init-from checkpoint's tokenizer" in run.stderr
    assert f"roberta train-tokenizer --root {root} --existing {source}" in run.stderr
    assert f"roberta shard-corpus --root {root}" in run.stderr
    assert not (root / "pretrain").exists()

    from corpus.bpe import use_existing_tokenizer
    from corpus.sharding import shard_corpus

    use_existing_tokenizer(root, source)               # what the two commands do
    shard_corpus(root, fmt="full-sentences", block_size=64, valid_fraction=0.1, workers=1)
    assert check_inputs(continued(root, source, "fixed")).model.vocab_size == 1000


def test_a_vocabulary_of_another_size_is_refused(tmp_path_factory, tmp_path, capsys):
    import warnings

    from evaluation.synthetic import make_tiny_checkpoint

    root = sample_shards_root(tmp_path_factory.getbasetemp())   # shards of 1,000 ids
    with warnings.catch_warnings():      # "the corpus gave fewer tokens than asked for"
        warnings.simplefilter("ignore")
        ck = make_tiny_checkpoint(tmp_path / "ck", vocab_size=600)
    code, err = cli(capsys, "--root", root, "--init-from", ck)
    assert code == 2 and err.startswith("roberta pretrain: ")
    assert "another tokenizer" in err and f"--existing {ck}" in err


def _edit_config(d, **changes):
    path = d / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _damage(kind: str, d) -> str:
    """Damage the copy of a checkpoint in `d` as `kind` says; returns the file to be named."""
    from safetensors.torch import load_file, save_file

    if kind == "no config.json":
        (d / "config.json").unlink()
        return "config.json"
    if kind == "not roberta":
        _edit_config(d, model_type="bert")
        return "config.json"
    if kind == "config not json":
        (d / "config.json").write_text("{ not json")
        return "config.json"
    if kind == "more layers in config":
        cfg = json.loads((d / "config.json").read_text())
        cfg.pop("roberta_pipeline")
        (d / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
        return "model.safetensors"
    if kind == "weight missing":
        sd = load_file(str(d / "model.safetensors"))
        del sd["roberta.encoder.layer.1.output.dense.weight"]
        save_file(sd, str(d / "model.safetensors"))
        return "model.safetensors"
    if kind == "shape mismatch":
        sd = load_file(str(d / "model.safetensors"))
        sd["roberta.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(128, 64)
        save_file(sd, str(d / "model.safetensors"))
        return "model.safetensors"
    if kind == "truncated weights":
        data = (d / "model.safetensors").read_bytes()
        (d / "model.safetensors").write_bytes(data[: len(data) // 2])
        return "model.safetensors"
    assert kind == "pickle with code"
    (d / "model.safetensors").unlink()
    payload = _Payload()
    payload.marker = d / "pwned"
    torch.save({"x": payload}, d / "pytorch_model.bin")
    return "pytorch_model.bin"


@pytest.mark.parametrize("kind", ["no config.json", "not roberta", "config not json",
                                  "more layers in config", "weight missing", "shape mismatch",
                                  "truncated weights", "pickle with code"])
def test_a_directory_that_is_no_usable_checkpoint_is_exit_2_naming_the_file(
        source, other_corpus, tmp_path, capsys, kind):
    d = tmp_path / "ck"
    shutil.copytree(source, d)
    named = _damage(kind, d)
    code, err = cli(capsys, "--root", other_corpus, "--init-from", d, "--run", "bad")
    assert code == 2, err
    assert err.startswith("roberta pretrain: --init-from ") and str(d / named) in err, err
    assert "Traceback" not in err
    assert not (d / "pwned").exists()                 # weights_only: the payload never ran
    assert not (other_corpus / "pretrain" / "bad").exists()


def test_a_preset_of_another_shape_is_exit_2_naming_both(source, other_corpus, capsys):
    code, err = cli(capsys, "--root", other_corpus, "--init-from", source, "--config", "base")
    assert code == 2 and "'base' is 12 layers x 768 hidden" in err and "2 layers x 64" in err


def test_resuming_needs_the_same_starting_point(source, other_corpus, capsys):
    cfg = continued(other_corpus, source, "resume-check", steps=4)
    train(cfg, stop_after=2)
    code, err = cli(capsys, "--root", other_corpus, "--run", cfg.run, "--resume")
    assert code == 2 and f"started from {source.resolve()}" in err
    assert f"resume it with --init-from {source.resolve()}" in err


# ------------------------------------------------------------------ roberta pipeline --init-from

@pytest.mark.slow
def test_pipeline_adopts_the_checkpoints_tokenizer_for_a_continued_run(source, tmp_path_factory,
                                                                       tmp_path):
    """The pipeline's corpus stages with `init_from`: train-tokenizer adopts the checkpoint's
    tokenizer, and the shards it makes are accepted by the continued run's checks (the
    pretrain stage is the `pretrain` flow, whose --init-from runs are tested above)."""
    from flows.pipeline import corpus_stages, stage_outputs
    from flows.pretrain import check_inputs

    crawl = sample_shards_root(tmp_path_factory.getbasetemp())
    root = tmp_path / "pipe"
    shutil.copytree(crawl / "corpus", root / "corpus")          # build-corpus is done
    cfg = continued(root, source, None)
    skipped = corpus_stages(str(root), stage_outputs(root, cfg.run), inputs=None,
                            corpus_runner="threads", workers=1, vocab_size=50265,
                            format="full-sentences", block_size=64, init_from=cfg.init_from)
    assert skipped == ["build-corpus"]
    info = json.loads((root / "tokenizer" / "tokenizer_info.json").read_text())
    assert info["params"]["mode"] == "existing" and info["params"]["source"] == str(source)
    assert info["vocab_size"] == 1000                         # the checkpoint's, not 50,265
    assert check_inputs(cfg).model.vocab_size == 1000


def test_pipeline_refuses_a_root_with_another_tokenizer_before_any_stage(tmp_path_factory,
                                                                         source, tmp_path):
    import warnings

    from evaluation.synthetic import make_tiny_checkpoint
    from flows.pipeline import check_init_from

    crawl = sample_shards_root(tmp_path_factory.getbasetemp())   # the source's own tokenizer
    check_init_from(str(crawl), PretrainConfig.for_run(crawl, None, init_from=str(source)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = make_tiny_checkpoint(tmp_path / "other")
    with pytest.raises(ValueError, match="another tokenizer than .*use a new --root"):
        check_init_from(str(crawl), PretrainConfig.for_run(crawl, None, init_from=str(other)))
    with pytest.raises(ValueError, match="--block-size 1024: .*allows 512 tokens"):
        check_init_from(str(tmp_path / "new"),
                        PretrainConfig.for_run(tmp_path / "new", None, init_from=str(source)),
                        block_size=1024)
