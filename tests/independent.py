"""An independent float64 implementation of the contract, written element by element.

It shares no code with ``mhc_course``: per token, per stream and per matrix entry, with
Python loops and scalar formulas, so an indexing or ordering slip in the vectorised
reference shows up as a disagreement. Gradients flow through it with autograd.
"""

from __future__ import annotations

import torch


def sigmoid(t):
    return 1 / (1 + torch.exp(-t))


def sinkhorn(logits: torch.Tensor, iters: int) -> torch.Tensor:
    """One (n, n) matrix, rows and columns handled entry by entry."""
    n = logits.shape[0]
    top = logits.max()
    m = [[torch.exp(logits[i, j] - top) for j in range(n)] for i in range(n)]
    for _ in range(iters):
        for j in range(n):
            s = sum(m[i][j] for i in range(n))
            for i in range(n):
                m[i][j] = m[i][j] / s
        for i in range(n):
            s = sum(m[i][j] for j in range(n))
            for j in range(n):
                m[i][j] = m[i][j] / s
    return torch.stack([torch.stack(row) for row in m])


def coefficients(x, phi, bias, alpha, iters=20, eps=1e-6):
    """Returns h_pre (..., n), h_post (..., n), h_res (..., n, n) like the contract."""
    lead, n, c = x.shape[:-2], x.shape[-2], x.shape[-1]
    tokens = x.reshape(-1, n, c)
    pres, posts, ress = [], [], []
    for t in range(tokens.shape[0]):
        v = torch.cat([tokens[t, i] for i in range(n)])
        mean_sq = sum(v[k] * v[k] for k in range(n * c)) / (n * c)
        vn = v / torch.sqrt(mean_sq + eps)
        z = [sum(vn[k] * phi[k, j] for k in range(n * c)) for j in range(n * n + 2 * n)]
        pres.append(torch.stack([sigmoid(alpha[0] * z[i] + bias[i]) for i in range(n)]))
        posts.append(torch.stack([2 * sigmoid(alpha[1] * z[n + i] + bias[n + i]) for i in range(n)]))
        res = [alpha[2] * z[2 * n + k] + bias[2 * n + k] for k in range(n * n)]  # row-major
        logits = torch.stack([torch.stack(res[i * n : (i + 1) * n]) for i in range(n)])
        ress.append(sinkhorn(logits, iters))
    return (
        torch.stack(pres).reshape(*lead, n),
        torch.stack(posts).reshape(*lead, n),
        torch.stack(ress).reshape(*lead, n, n),
    )


def pre(x, h_pre):
    n = x.shape[-2]
    return sum(h_pre[..., i, None] * x[..., i, :] for i in range(n))


def post_res(x, f, h_post, h_res):
    n = x.shape[-2]
    rows = [sum(h_res[..., i, j, None] * x[..., j, :] for j in range(n)) + h_post[..., i, None] * f for i in range(n)]
    return torch.stack(rows, dim=-2)

