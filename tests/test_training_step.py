"""The real training step: accumulation equivalence, NaN skip, learning, model invariants."""
import math

import numpy as np
import pytest
import torch

from training.config import MaskingConfig, ModelConfig, OptimConfig
from training.masking import Masker
from training.model import build_model
from training.optim import build_optimizer, build_scheduler
from training.step import NonFiniteLossError, TrainStep, eval_step

CFG = ModelConfig.named("tiny", vocab_size=500, dropout=0.0, attention_dropout=0.0)
MCFG = MaskingConfig.for_model(CFG)


def _blocks(n, T=32, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.integers(4, CFG.vocab_size - 1, size=(n, T))
    b[:, 0], b[:, -1] = 0, 2
    b[1::3, T // 2:] = 1          # some padded blocks
    return b


def _setup(seed=0, **step_kw):
    model = build_model(CFG, seed=seed)
    ocfg = OptimConfig.named("tiny", peak_lr=1e-3, warmup_steps=2)
    opt = build_optimizer(model, ocfg)
    return model, TrainStep(model, opt, build_scheduler(opt, ocfg), **step_kw)


def test_gradient_accumulation_equivalence():
    blocks, idx = _blocks(8), np.arange(8)
    masker = Masker(MCFG, seed=1)
    whole = [masker(blocks, idx, epoch=0)]
    micro = [masker(blocks[i:i + 2], idx[i:i + 2], epoch=0) for i in range(0, 8, 2)]
    assert sum(m["num_masked"] for m in micro) == whole[0]["num_masked"]
    m1, s1 = _setup()
    m2, s2 = _setup()
    r1, r2 = s1(whole), s2(micro)
    assert r1.loss == pytest.approx(r2.loss, rel=1e-5)
    assert r1.grad_norm == pytest.approx(r2.grad_norm, rel=1e-4)
    assert r1.masked_tokens == r2.masked_tokens and r1.tokens == r2.tokens and r2.micro_batches == 4
    for (n, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.parametrize("device_skip", [True, False])
def test_nonfinite_loss_skips_and_raises_after_n(device_skip):
    """device_skip: fused AdamW skips on the device (found_inf) before the host sync; False:
    the host checks first and never calls the optimizer. Either way nothing is updated."""
    model, step = _setup(max_consecutive_nonfinite=2, device_skip=device_skip)
    assert step._device_skip() == device_skip       # build_optimizer gives fused AdamW on CPU
    batch = Masker(MCFG, seed=0)(_blocks(4), np.arange(4), epoch=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.layers[0].up.bias[0] = float("nan")
    m = step([batch])
    assert m.skipped and m.consecutive_nonfinite == 1 and math.isnan(m.loss) and step.steps == 0
    assert all(p.grad is None for p in model.parameters())
    for st in step.optimizer.state.values():        # no update happened (state may exist)
        assert float(st["step"]) == 0 and not st["exp_avg"].any() and not st["exp_avg_sq"].any()
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 2)   # schedule not advanced
    for k, v in model.state_dict().items():
        if k != "layers.0.up.bias":
            assert torch.equal(v, before[k]), k
    with pytest.raises(NonFiniteLossError, match="2 consecutive"):
        step([batch])
    with torch.no_grad():
        model.layers[0].up.bias[0] = 0.0
    step.max_consecutive_nonfinite = 5
    ok = step([batch])
    assert not ok.skipped and ok.consecutive_nonfinite == 0 and step.skipped_total == 2
    assert step.state_dict() == {"steps": 1, "skipped_total": 2, "consecutive_nonfinite": 0}


def test_learns_a_trivial_pattern():
    """Each block repeats one random token: a masked token is predictable only from context.
    A unigram model cannot beat ln(59) nats; the model must go well below it in 80 steps."""
    cfg = ModelConfig.named("tiny", vocab_size=64, dropout=0.0, attention_dropout=0.0)
    mcfg = MaskingConfig.for_model(cfg)
    model = build_model(cfg, seed=0)
    ocfg = OptimConfig.named("tiny", peak_lr=1e-2, warmup_steps=10, total_steps=80)
    opt = build_optimizer(model, ocfg)
    step = TrainStep(model, opt, build_scheduler(opt, ocfg))
    rng = np.random.default_rng(0)
    masker = Masker(mcfg, seed=0)
    losses = []
    for s in range(80):
        blocks = np.repeat(rng.integers(4, 63, size=(16, 1)), 32, axis=1)
        blocks[:, 0], blocks[:, -1] = 0, 2
        losses.append(step([masker(blocks, np.arange(s * 16, s * 16 + 16), epoch=0)]).loss)
    assert losses[0] > 3.9 and np.mean(losses[-5:]) < 0.75 * math.log(59), losses


def test_padding_vocab_rows_never_predicted_and_eval_step():
    model = build_model(CFG, seed=0)
    assert model.embed.tokens.weight.shape[0] == 512 and CFG.vocab_size == 500
    assert model.embed.tokens.weight[CFG.vocab_size:].abs().sum() == 0
    h = torch.randn(5, CFG.hidden_size)
    logits = model.mlm_logits(h)
    assert torch.isneginf(logits[:, CFG.vocab_size:]).all()
    batch = Masker(MCFG, seed=0)(_blocks(4), np.arange(4), epoch=0)
    total, n = eval_step(model, batch)
    assert n == batch["num_masked"] and abs(total / n - math.log(CFG.vocab_size)) < 0.5


def test_padding_does_not_change_real_positions():
    """A padded block gives the same hidden states at its real tokens as the unpadded one."""
    model = build_model(CFG, seed=0).eval()
    ids = torch.tensor([[0, 20, 21, 22, 2]])
    padded = torch.tensor([[0, 20, 21, 22, 2, 1, 1, 1]])
    with torch.no_grad():
        a = model.encode(ids)
        b = model.encode(padded, padded != 1)
    torch.testing.assert_close(a[0], b[0, :5], rtol=1e-5, atol=1e-5)


def test_nsp_head_loss():
    cfg = CFG.replace(nsp_head=True)
    model = build_model(cfg, seed=0)
    opt = build_optimizer(model, OptimConfig.named("tiny"))
    step = TrainStep(model, opt)
    batch = Masker(MCFG, seed=0)(_blocks(4), np.arange(4), epoch=0, nsp_labels=np.array([0, 1, 1, 0]))
    m = step([batch])
    assert m.nsp_loss is not None and abs(m.nsp_loss - math.log(2)) < 0.3
    assert m.loss == pytest.approx(m.mlm_loss + m.nsp_loss)
    assert model.nsp_head.out.weight.grad is None            # zeroed after the update


def test_fused_linear_cross_entropy_matches_plain():
    """The eager-mode fused head loss == F.cross_entropy on the same logits, values and grads,
    including -inf padding columns, ignored targets, and bf16 autocast."""
    import torch.nn.functional as F

    from training.linear_cross_entropy import LinearCrossEntropy
    from training.masking import IGNORE_INDEX

    torch.manual_seed(0)
    for amp in (None, torch.bfloat16):
        h = torch.randn(37, 16, requires_grad=True)
        w = torch.randn(128, 16, requires_grad=True)
        b = torch.randn(128)
        b[-5:] = float("-inf")
        b.requires_grad_()
        t = torch.randint(0, 123, (37,))
        t[::4] = IGNORE_INDEX
        ctx = torch.autocast("cpu", dtype=amp) if amp else torch.autocast("cpu", enabled=False)
        grads = []
        for fused in (True, False):
            with ctx:
                loss = (LinearCrossEntropy.apply(h, w, b, t) if fused else
                        F.cross_entropy(F.linear(h, w, b).float(), t, ignore_index=IGNORE_INDEX,
                                        reduction="sum"))
            (loss * 2).backward()
            grads.append((loss.detach(), h.grad, w.grad, b.grad))
            h.grad = w.grad = b.grad = None
        (l1, *g1), (l2, *g2) = grads
        tol = 1e-5 if amp is None else 1e-2
        torch.testing.assert_close(l1, l2, rtol=tol, atol=tol)
        for a, c in zip(g1, g2):
            assert a.dtype == torch.float32
            torch.testing.assert_close(a, c, rtol=tol, atol=tol * c.abs().max().item())


def test_fused_head_loss_buffer_reuse_is_safe():
    """On CPU the head loss keeps its (N, vocab) buffer for the next call: two graphs alive at
    once must still get their own buffers (right values and grads, repeatedly), and a second
    backward through one graph must raise rather than read a recycled buffer."""
    import torch.nn.functional as F

    from training.linear_cross_entropy import LinearCrossEntropy
    from training.masking import IGNORE_INDEX

    def make(n=37, v=128):
        h, w = torch.randn(n, 16, requires_grad=True), torch.randn(v, 16, requires_grad=True)
        b = torch.randn(v)
        b[-5:] = float("-inf")
        t = torch.randint(0, v - 5, (n,))
        t[::4] = IGNORE_INDEX
        return h, w, b.requires_grad_(), t

    def plain(h, w, b, t):
        return F.cross_entropy(F.linear(h, w, b), t, ignore_index=IGNORE_INDEX, reduction="sum")

    torch.manual_seed(0)
    for _ in range(3):
        A, B = make(), make()
        la, lb = LinearCrossEntropy.apply(*A), LinearCrossEntropy.apply(*B)
        got = torch.autograd.grad(2 * la + 3 * lb, A[:3] + B[:3])
        ra, rb = plain(*A), plain(*B)
        want = torch.autograd.grad(2 * ra + 3 * rb, A[:3] + B[:3])
        torch.testing.assert_close(torch.stack([la, lb]), torch.stack([ra, rb]).detach())
        for g, r in zip(got, want):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5 * r.abs().max().item())
    loss = LinearCrossEntropy.apply(*make())
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


@pytest.mark.parametrize("low_precision", [True, False])
def test_layernorm_output_dtype_under_autocast(low_precision):
    """low_precision_layernorm: under autocast the LayerNorm returns bf16 computed in float32
    (so it equals the float32 LayerNorm rounded once); off, whatever autocast's own policy
    gives (float32 on CUDA; CPU autocast already returns bf16). Outside autocast both are the
    plain float32 LayerNorm."""
    from training.model import LayerNorm
    ln = LayerNorm(CFG.replace(low_precision_layernorm=low_precision))
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(4, 7, CFG.hidden_size).to(torch.bfloat16)
    ref = torch.nn.functional.layer_norm(x.float(), ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ln(x)
        autocast_default = torch.nn.LayerNorm.forward(ln, x).dtype
    assert y.dtype == (torch.bfloat16 if low_precision else autocast_default)
    torch.testing.assert_close(y.float(), ref, rtol=1e-2, atol=1e-2)
    if low_precision:
        assert torch.equal(y, ref.to(torch.bfloat16))
    assert ln(x.float()).dtype == torch.float32


def _batches(n_batches=4, per=2, seed=3):
    blocks, masker = _blocks(n_batches * per), Masker(MCFG, seed=seed)
    return [masker(blocks[i:i + per], np.arange(i, i + per), epoch=0)
            for i in range(0, n_batches * per, per)]


@pytest.mark.parametrize("device_skip", [True, False])
def test_pipelined_launches_match_synchronous_steps(device_skip):
    """launch(k+1) before result(k) (what the loop does so the GPU never waits for Python)
    gives the same losses, LRs and weights as calling the step synchronously."""
    batches = _batches()
    m1, s1 = _setup(device_skip=device_skip)
    m2, s2 = _setup(device_skip=device_skip)
    sync = [s1([b]) for b in batches]
    piped, prev = [], None
    for b in batches:
        nxt = s2.launch([b])
        if prev is not None:
            piped.append(prev.result())
        prev = nxt
    piped.append(s2.drain())
    assert s2.drain() is None
    assert [m.as_dict() for m in piped] == [m.as_dict() for m in sync]
    for (n, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        assert torch.equal(a, b), n


def test_pipelined_skip_is_taken_back_from_the_schedule():
    """A skipped update found one step late: the schedule is rewound, so after it the LR
    and counters are as if the step had never been taken; only the already-launched next
    update used the next LR (the one documented difference from synchronous stepping)."""
    from training.optim import lr_at
    batches = _batches()
    model, step = _setup(max_consecutive_nonfinite=3)
    ocfg = OptimConfig.named("tiny", peak_lr=1e-3, warmup_steps=2)
    with torch.no_grad():
        model.layers[0].up.bias[0] = float("nan")
    bad = step.launch([batches[0]])
    with torch.no_grad():
        model.layers[0].up.bias[0] = 0.0
    good = step.launch([batches[1]])
    mb, mg = bad.result(), good.result()
    assert mb.skipped and not mg.skipped and step.steps == 1 and step.skipped_total == 1
    assert mb.lr == pytest.approx(lr_at(0, ocfg)) and mg.lr == pytest.approx(lr_at(1, ocfg))
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(lr_at(1, ocfg))
    assert step.scheduler.last_epoch == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
