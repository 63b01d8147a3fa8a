"""Our model <-> transformers' RobertaForMaskedLM, both directions, float32 logits within 1e-4."""
import json
import warnings

import pytest
import torch

from training.config import ModelConfig
from training.hf_io import export_hf, load_hf, read_hf_weights
from training.model import build_model

transformers = pytest.importorskip("transformers")
warnings.filterwarnings("ignore", module="transformers")

CFG = ModelConfig.named("tiny", vocab_size=1000)   # 1000 -> padded to 1024 internally


def _inputs(cfg, pad: bool):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, cfg.vocab_size - 1, (3, 24), generator=g)
    ids[:, 0], ids[:, -1] = cfg.bos_id, cfg.eos_id
    ids[1, 5] = cfg.mask_token_id
    if not pad:
        return ids, None
    ids[1, 16:] = cfg.pad_id
    ids[2, 9:] = cfg.pad_id
    ids[1, 15] = ids[2, 8] = cfg.eos_id
    return ids, (ids != cfg.pad_id).long()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_export_loads_in_transformers_and_logits_match(tmp_path, attn):
    ours = build_model(CFG, seed=0).eval()
    with torch.no_grad():   # non-trivial biases / LN so the mapping is really tested
        for n, p in ours.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    export_hf(ours, tmp_path)
    cfg_json = json.loads((tmp_path / "config.json").read_text())
    assert cfg_json["model_type"] == "roberta"
    assert cfg_json["architectures"] == ["RobertaForMaskedLM"]
    assert cfg_json["max_position_embeddings"] == CFG.max_positions + 2 == 514
    assert cfg_json["type_vocab_size"] == 1 and cfg_json["layer_norm_eps"] == 1e-5
    assert (cfg_json["pad_token_id"], cfg_json["bos_token_id"], cfg_json["eos_token_id"]) == (1, 0, 2)
    sd = read_hf_weights(tmp_path)
    assert sd["roberta.embeddings.word_embeddings.weight"].shape[0] == CFG.vocab_size   # unpadded
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation=attn).eval()
    assert type(hf).__name__ == "RobertaForMaskedLM"
    for pad in (False, True):
        ids, am = _inputs(CFG, pad)
        with torch.no_grad():
            a = ours.logits(ids, am)
            b = hf(input_ids=ids, attention_mask=am).logits
        assert a.shape == b.shape == (3, 24, CFG.vocab_size)
        real = (ids != CFG.pad_id)
        assert (a - b)[real].abs().max().item() < 1e-4
        assert (a - b).abs().max().item() < 1e-4          # padded positions agree too


def test_hf_checkpoint_loads_into_ours(tmp_path):
    hcfg = transformers.RobertaConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(1)
    hf = transformers.RobertaForMaskedLM(hcfg).eval()
    with torch.no_grad():
        hf.lm_head.bias.normal_(0, 0.1)
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path).eval()
    assert ours.cfg.max_positions == 512 and ours.cfg.padded_vocab_size == 1024
    for pad in (False, True):
        ids, am = _inputs(ours.cfg, pad)
        with torch.no_grad():
            a = ours.logits(ids, am)
            b = hf(input_ids=ids, attention_mask=am).logits
        assert (a - b).abs().max().item() < 1e-4


def test_pytorch_model_bin_loads_weights_only(tmp_path):
    ours = build_model(CFG, seed=3).eval()
    export_hf(ours, tmp_path)
    sd = read_hf_weights(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(sd, tmp_path / "pytorch_model.bin")
    back = load_hf(tmp_path).eval()
    ids, am = _inputs(CFG, True)
    with torch.no_grad():
        assert torch.equal(back.logits(ids, am), ours.logits(ids, am))


def test_round_trip_keeps_optional_heads_and_tokenizer_files(tmp_path):
    cfg = CFG.replace(nsp_head=True, num_labels=3)
    ours = build_model(cfg, seed=4)
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text("{}")
    (tok / "vocab.json").write_text("{}")
    out = export_hf(ours, tmp_path / "out", tokenizer_dir=tok)
    assert {"tokenizer.json", "vocab.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    back = load_hf(out)
    assert back.cfg == cfg
    a, b = ours.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_rejects_missing_dir(tmp_path):
    from training.hf_config import HFCheckpointError

    with pytest.raises(HFCheckpointError, match=f"{tmp_path}/config.json: missing"):
        load_hf(tmp_path)
    with pytest.raises(HFCheckpointError, match=f"{tmp_path / 'nope'}: not a directory"):
        load_hf(tmp_path / "nope")


def test_config_and_weights_that_disagree_name_both_files(tmp_path):
    # before: a bare KeyError for a missing weight, a size-mismatch RuntimeError for a shape
    from training.hf_config import HFCheckpointError

    export_hf(build_model(CFG, seed=0), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["roberta_pipeline"]["ffn_size"] = 128
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HFCheckpointError, match=(
            f"{tmp_path}/model.safetensors does not fit the model of {tmp_path}/config.json: "
            r"roberta.encoder.layer.0.intermediate.dense.weight has shape \[256, 64\], the "
            r"config's needs \[128, 64\]")):
        load_hf(tmp_path)


def test_loss_and_gradients_match_transformers(tmp_path):
    """Masked-only head + summed CE / count == HF's dense head + mean CE over labels."""
    import numpy as np

    from training.config import MaskingConfig
    from training.masking import Masker, labels_from_batch

    cfg = CFG.replace(dropout=0.0, attention_dropout=0.0)
    ours = build_model(cfg, seed=0)
    export_hf(ours, tmp_path)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).train()
    blocks = np.random.default_rng(0).integers(4, cfg.vocab_size - 1, size=(4, 32))
    blocks[:, 0], blocks[:, -1] = 0, 2
    blocks[2, 20:] = 1
    b = Masker(MaskingConfig.for_model(cfg), seed=0)(blocks, np.arange(4), epoch=0)
    ids = torch.from_numpy(b["input_ids"])
    am = torch.from_numpy(b["attention_mask"])
    out = ours(ids, torch.from_numpy(b["mlm_positions"]), torch.from_numpy(b["mlm_targets"]), am)
    loss = out["mlm_loss_sum"] / b["num_masked"]
    loss.backward()
    hl = hf(input_ids=ids, attention_mask=am.long(), labels=torch.from_numpy(labels_from_batch(b))).loss
    hl.backward()
    assert abs(loss.item() - hl.item()) < 1e-5
    hg = {n: p.grad for n, p in hf.named_parameters()}
    torch.testing.assert_close(ours.embed.tokens.weight.grad[: cfg.vocab_size],
                               hg["roberta.embeddings.word_embeddings.weight"], rtol=1e-4, atol=1e-6)
    q, k, v = ours.layers[1].attn.qkv.weight.grad.chunk(3)
    torch.testing.assert_close(v, hg["roberta.encoder.layer.1.attention.self.value.weight"],
                               rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ours.lm_head.bias.grad, hg["lm_head.bias"], rtol=1e-4, atol=1e-7)
