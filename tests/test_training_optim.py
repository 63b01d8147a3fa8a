import pytest
import torch

from training.config import ModelConfig, OptimConfig
from training.model import build_model
from training.optim import build_optimizer, build_scheduler, lr_at


def test_paper_table9_presets():
    base, large = OptimConfig.named("base"), OptimConfig.named("large")
    assert (base.peak_lr, base.warmup_steps, base.total_steps, base.batch_size) == (6e-4, 24_000, 500_000, 8192)
    assert (large.peak_lr, large.warmup_steps, large.total_steps) == (4e-4, 30_000, 500_000)
    assert base.betas == (0.9, 0.98) and base.eps == 1e-6 and base.weight_decay == 0.01
    assert base.clip_grad_norm == 0.0
    with pytest.raises(ValueError):
        OptimConfig.named("base", not_a_field=1)


def test_model_presets():
    b, l = ModelConfig.named("base"), ModelConfig.named("large")
    assert (b.num_layers, b.hidden_size, b.num_heads, b.ffn_size) == (12, 768, 12, 3072)
    assert (l.num_layers, l.hidden_size, l.num_heads, l.ffn_size) == (24, 1024, 16, 4096)
    assert b.num_position_rows == 514 and b.padded_vocab_size == 50304 and b.mask_token_id == 50264
    assert ModelConfig.named("tiny", vocab_size=1000).vocab_size == 1000
    # the issue's ~601 MFLOP/token at base shapes, T=512, head on 15% of tokens
    assert abs(b.flops_per_token(512) / 1e6 - 601) < 2
    assert abs(b.flops_per_token(512, dense_head=True) / 1e6 - 802) < 2


def test_schedule_linear_warmup_then_linear_decay_to_zero():
    cfg = OptimConfig(peak_lr=1e-3, warmup_steps=10, total_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)              # peak at the end of warm-up
    assert lr_at(59, cfg) == pytest.approx(0.5e-3)           # half way down
    assert lr_at(109, cfg) == 0.0 and lr_at(500, cfg) == 0.0
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.peak_lr)
    sched = build_scheduler(opt, cfg)
    seen = []
    for _ in range(110):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, cfg) for s in range(110)])


def test_optimizer_settings_and_decay_groups():
    model = build_model(ModelConfig.named("tiny", vocab_size=100))
    opt = build_optimizer(model, OptimConfig.named("base"))
    assert len(opt.param_groups) == 1                         # fairseq: decay everything
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.98) and g["eps"] == 1e-6 and g["weight_decay"] == 0.01
    opt2 = build_optimizer(model, OptimConfig.named("base", decay_norm_and_bias=False))
    assert [grp["weight_decay"] for grp in opt2.param_groups] == [0.01, 0.0]
    assert all(p.ndim == 1 for p in opt2.param_groups[1]["params"])
