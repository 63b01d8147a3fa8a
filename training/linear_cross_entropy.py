"""The MLM loss of eager training (`Roberta.forward` in model.py): the LM head's decoder GEMM
and the cross-entropy as one autograd function, with a single (N, vocab) buffer.
"""
from __future__ import annotations

import threading

import torch

from training.masking import IGNORE_INDEX


class LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i W^T + b, t_i) over targets != -100, for eager mode.

    One (N, vocab) buffer, never log-probabilities. In float32 the forward turns the logits
    into exp(logits - row max) in place (its row sums give the log-sum-exp: no temporary the
    size of the logits, which torch.logsumexp would allocate), and backward turns that into
    (softmax - one_hot) * upstream grad with one multiply and a scatter. Under autocast the GEMMs
    run in the autocast dtype and the softmax in float32 from the saved low-precision logits,
    as F.cross_entropy would.
    On CPU the buffer is kept after backward and reused by the next call: a fresh (N, vocab)
    tensor there is a new mmap (glibc), whose page faults cost about half as much as the GEMM
    that fills it; CUDA's caching allocator already reuses memory. It is memory the step needs
    at its peak anyway; one per thread, so threads training side by side never share one.
    Because of the reuse, backward may run only once per forward (retain_graph raises).
    (Under torch.compile the plain expression is used instead: inductor fuses it itself.)
    """
    _local = threading.local()               # .spare: a CPU buffer whose backward has run

    @staticmethod
    def forward(ctx, h, weight, bias, targets):
        dev = h.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        with torch.autocast(dev, enabled=False):
            hc, wc = h.to(dtype), weight.to(dtype)
            local = LinearCrossEntropy._local
            buf, local.spare = getattr(local, "spare", None), None
            shape = (hc.shape[0], wc.shape[0])
            if buf is None or buf.shape != shape or buf.dtype != dtype or buf.device != h.device:
                buf = hc.new_empty(shape)
            logits = torch.addmm(bias.to(dtype), hc, wc.t(), out=buf)
            valid = targets.ne(IGNORE_INDEX)
            safe = torch.where(valid, targets, torch.zeros_like(targets))
            picked = logits.gather(1, safe[:, None]).squeeze(1).float()
            if dtype == torch.float32:
                m = logits.amax(1, keepdim=True)
                s = logits.sub_(m).exp_().sum(1)         # buf = exp(logits - m) from here on
                lse, inv_s = m.squeeze(1) + s.log(), s.reciprocal()
            else:
                lse, inv_s = torch.logsumexp(logits.float(), dim=1), None
            loss = torch.where(valid, lse - picked, torch.zeros_like(lse)).sum()
        ctx.save_for_backward(hc, wc, buf, lse, inv_s, safe, valid)
        ctx.in_dtypes = (h.dtype, weight.dtype, bias.dtype)
        ctx.done = False
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        if ctx.done:
            raise RuntimeError("LinearCrossEntropy: backward ran twice (its buffer is reused)")
        ctx.done = True
        hc, wc, buf, lse, inv_s, safe, valid = ctx.saved_tensors
        h_dtype, w_dtype, b_dtype = ctx.in_dtypes
        with torch.autocast(hc.device.type, enabled=False):
            w = valid.float() * grad_loss.float()        # per row: upstream grad, 0 if ignored
            if inv_s is not None:                        # float32: buf = exp(logits - m)
                g = buf.mul_((w * inv_s)[:, None])       # softmax * w, in the buffer
            else:
                g = (buf.float() - lse[:, None]).exp_().mul_(w[:, None])
            g.scatter_add_(1, safe[:, None], -w[:, None])
            grad_b = g.sum(0)
            g = g.to(hc.dtype)
            grad_h = (g @ wc).to(h_dtype)
            grad_w = (g.t() @ hc).to(w_dtype)
        if buf.device.type == "cpu":
            LinearCrossEntropy._local.spare = buf
        return grad_h, grad_w, grad_b.to(b_dtype), None


__all__ = ["LinearCrossEntropy"]
