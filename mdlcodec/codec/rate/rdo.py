"""Rate-distortion optimised encoding: for each sample, the quantised code z that minimises

    J(z) = bits(z) + lam * ||x - Dec(z)||^2        (bits per sample; squared error summed over the
                                                     d_in dimensions of one sample, in x's units)

under the codec's own tables, starting from the SAE's quantised code. The file format and the
decoder do not change: the result is an ordinary code of the same quantiser, coded exactly by the
entropy coder; only the encoder searches harder. Old decoders read the files.

Bits in the search (an estimate; the file is coded exactly):
  a feature being active costs  -log2 p_f + log2 (1 - p_f)  over being inactive (the flat model's
  marginal p_f, also for a Chow-Liu forest), and its bin b costs -log2 P(b | f active), or the escape
  symbol's bits + 32 raw bits outside its table (``EntropyModel``'s smoothing rule).
Distortion: Dec(z) = (z @ W_dec + b_dec) / s, so ||x - Dec(z)||^2 = ||t - z @ W_dec||^2 / s^2 with
t = s * x - b_dec; a change of latent f by delta moves the residual r = t - z W_dec by -delta w_f:
||r - delta w_f||^2 = ||r||^2 - 2 delta r.w_f + delta^2 ||w_f||^2.

The search, batched over samples (torch, on ``device``; no per-sample Python loop):
  1. least-squares refit: the active set's values re-solved by least squares, then rounded to bins
     (kept for a sample only where J falls);
  2. greedy moves: the bin nearest the residual's optimum of every feature (an inactive one: add it
     where it pays, matching pursuit on the decoder's rows), and b - 1, b + 1 and 0 (drop) of every
     active one, are scored at once; each sample takes its best move while that lowers J, until
     none does or ``max_moves`` is reached. The residual's correlations with the rows are updated
     through the Gram matrix W_dec W_dec^T (d_sae^2 <= GRAM_LIMIT; else a matmul per move, no refit).
Steps 1-2 repeat ``rounds`` times. J never rises: a sample whose J ends above its start's (float
drift) keeps its start. The search's work per move is O(n d_sae); a few n d_in d_sae matmuls per batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mdlcodec.codec.entropy.entropy_model import ESCAPE_RAW_BITS, EntropyModel
from mdlcodec.codec.rate.quantiser import MAX_BIN
from mdlcodec.codec.sparse import SparseCodes

DEFAULT_MAX_MOVES = 64
_BATCH_ELEMS = 1 << 23
"""Rows per sub-batch: about this many (sample, feature) scores, four at once."""
REFIT_GROUP = 128
"""Rows per least-squares group (rows sorted by their active count)."""
GRAM_LIMIT = 1 << 24
"""Largest d_sae^2 for which the search keeps W_dec @ W_dec.T (64 MiB in float32): the least-squares
refit and the cheap update of the residual's correlations need it."""


class CostTables:
    """The search's per-feature bit costs (float32 tensors on ``device``), from an entropy model.

    on[f]: bits of f being active over inactive; table [sum T_f] bits of each bin of each feature's
    table; lo [d_sae], size [d_sae], offset [d_sae] locate f's table; escape [d_sae] the escape's bits
    plus the 32 raw bits. Where d_sae * (2 B + 3) <= ``DENSE_LIMIT`` (B the largest |bin| of any
    table), also ``dense`` [d_sae, 2 B + 3]: f's cost of bins -B-1 .. B+1 (the ends: every bin beyond,
    escaped), one gather per lookup."""

    DENSE_LIMIT = 1 << 22

    def __init__(self, model: EntropyModel, device: str | torch.device = "cpu"):
        p = model.p_active
        table_bits, escape_bits = model._value_log_probs
        dev = torch.device(device)
        self.on = torch.tensor(-np.log2(p) + np.log2(1 - p), dtype=torch.float32, device=dev)
        self.table = torch.tensor(table_bits, dtype=torch.float32, device=dev)
        self.lo = torch.tensor(model.value_lo.astype(np.int64), device=dev)
        self.size = torch.tensor(model.table_sizes.astype(np.int64), device=dev)
        self.offset = torch.tensor(model.value_offsets[:-1].astype(np.int64), device=dev)
        self.escape = torch.tensor(escape_bits + ESCAPE_RAW_BITS, dtype=torch.float32, device=dev)
        d = model.d_sae
        B = int(max(np.abs(model.value_lo.astype(np.int64)).max(),
                    np.abs(model.value_lo.astype(np.int64) + model.table_sizes - 1).max()))
        self.dense = None
        if d * (2 * B + 3) <= self.DENSE_LIMIT:
            self.B = B
            grid = torch.arange(-B - 1, B + 2, device=dev)[:, None].expand(-1, d)
            self.dense = self._bits(grid, slice(None)).T.contiguous()  # [d, 2B + 3]
            self.row = (torch.arange(d, device=dev) * (2 * B + 3) + B + 1)  # index of f's bin 0

    def bits(self, bins: torch.Tensor) -> torch.Tensor:
        """bins [n, d_sae] int64 -> bits [n, d_sae] of each latent over its being inactive (0 for bin 0)."""
        if self.dense is not None:
            return self.dense.view(-1)[self.row + bins.clamp(-self.B - 1, self.B + 1)]
        return self._bits(bins, slice(None))

    def feature_bits(self, bins: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """bins of any shape, each of the feature in ``features`` (int64, broadcast against bins) ->
        bits of each latent over its being inactive (0 for bin 0), as ``bits`` gives them."""
        if self.dense is not None:
            return self.dense.view(-1)[self.row[features] + bins.clamp(-self.B - 1, self.B + 1)]
        return self._bits(bins, features)

    def _bits(self, bins: torch.Tensor, ix) -> torch.Tensor:
        lo, size, off = self.lo[ix], self.size[ix], self.offset[ix]
        rel = bins - lo
        inside = (rel >= 0) & (rel < size)
        idx = off + torch.minimum(rel.clamp(min=0), size - 1)
        cost = torch.where(inside, self.table[idx], self.escape[ix]) + self.on[ix]
        return torch.where(bins == 0, torch.zeros((), dtype=cost.dtype, device=cost.device), cost)


def _objective(bins: torch.Tensor, resid: torch.Tensor, costs: CostTables, mu: float) -> torch.Tensor:
    """[n] J in scaled units: bits + mu * ||resid||^2 (mu = lam / s^2)."""
    return costs.bits(bins).sum(1) + mu * (resid * resid).sum(1)


def _ls_refit(bins: torch.Tensor, corr: torch.Tensor, gram: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The active set's values solved by least squares on the target, rounded to bins [n, d_sae]
    (rows without an active latent unchanged). corr [n, d_sae]: target @ W_dec.T; gram [d_sae, d_sae]:
    W_dec @ W_dec.T (the normal equations of each row's active set are gathered from them). Rows go
    in groups of similar active counts (sorted), each padded to its own largest: a few rows with many
    active latents do not pad every row's system to their size."""
    n = bins.shape[0]
    active = bins != 0
    count = active.sum(1)
    if n == 0 or int(count.max()) == 0:
        return bins
    out = bins.clone()
    by_count = torch.argsort(count, stable=True)
    for a in range(0, n, REFIT_GROUP):
        rows = by_count[a:a + REFIT_GROUP]
        k = int(count[rows[-1]])
        if k == 0:
            continue
        out[rows] = _ls_refit_rows(bins[rows], corr[rows], gram, step, k)
    return out


def _ls_refit_rows(bins: torch.Tensor, corr: torch.Tensor, gram: torch.Tensor, step: torch.Tensor, k: int) -> torch.Tensor:
    """_ls_refit of rows with at most k active latents each (k >= 1)."""
    active = bins != 0
    d = bins.shape[1]
    # each row's active features, padded to k (padding: a masked identity row)
    order = torch.topk(active.to(torch.int8), k, dim=1, sorted=False).indices
    mask = torch.gather(active, 1, order)
    both = mask[:, :, None] & mask[:, None, :]
    G = (torch.take(gram, order[:, :, None] * d + order[:, None, :]) * both).double()
    eye = torch.eye(k, dtype=G.dtype, device=G.device)
    G = G + eye * (~mask)[:, None, :].to(G.dtype) + 1e-6 * eye * G.diagonal(dim1=1, dim2=2).amax(1)[:, None, None]
    rhs = torch.where(mask, torch.gather(corr, 1, order), torch.zeros((), device=corr.device)).double()
    v = torch.linalg.solve(G, rhs[..., None])[..., 0].float()
    new = torch.round(v / step[order]).clamp(-MAX_BIN, MAX_BIN).to(torch.int64) * mask
    out = torch.zeros_like(bins)
    out.scatter_(1, order, new)
    return torch.where(active, out, bins)


def _greedy(bins: torch.Tensor, resid: torch.Tensor, W: torch.Tensor, g: torch.Tensor, step: torch.Tensor,
            costs: CostTables, mu: float, max_moves: int, gram: torch.Tensor | None) -> torch.Tensor:
    """Best single moves per sample while they lower J (see the module's docstring); returns the bins
    (``resid``, [n, d_in], is spent). Candidates: for every feature, the bin nearest the residual's
    optimum (an add where it is inactive); for every active one also its bin - 1, + 1 and 0 (drop).
    The correlations c = resid @ W_dec.T are kept up to date through ``gram`` (W_dec @ W_dec.T) where
    given, else recomputed from the residual at each move.

    Moving f by u bins changes J by bits(b + u) - bits(b) + u (u A_f - B_f c_f), A = mu step^2 |w|^2,
    B = 2 mu step. The residual's optimum is u = round(c / (|w|^2 step)): only the (few) features
    where that is not 0 are scored, as a list, not the whole [samples, d_sae] matrix."""
    n = bins.shape[0]
    dev = bins.device
    live = torch.arange(n, device=dev)
    corr = resid @ W.T if gram is not None else None
    inv = 1.0 / (g * step)
    A, B = mu * step * step * g, 2.0 * mu * step
    now = costs.bits(bins)  # [n, d] bits of each latent over its being inactive, kept up to date
    inf = torch.full((), float("inf"), device=dev)
    for _ in range(max_moves):
        m = len(live)
        if not m:
            break
        every = m == n
        b = bins if every else bins[live]
        c = (corr if every else corr[live]) if gram is not None else resid[live] @ W.T  # [m, d]
        nw = now if every else now[live]
        # one candidate per feature, the bin nearest the residual's optimum, listed where it moves
        t = c * inv
        r, f_all = torch.nonzero(t.abs() >= 0.5, as_tuple=True)
        u = torch.round(t[r, f_all])
        b_rf = b[r, f_all]
        cand_b = (b_rf + u.to(torch.int64)).clamp(-MAX_BIN, MAX_BIN)
        u = (cand_b - b_rf).to(torch.float32)
        cand_bits = costs.feature_bits(cand_b, f_all)
        dJ = cand_bits - nw[r, f_all] + u * (u * A[f_all] - B[f_all] * c[r, f_all])
        val = torch.zeros(m, device=dev)  # no move: 0
        val.scatter_reduce_(0, r, dJ, "amin", include_self=True)
        pos = torch.arange(len(r), device=dev)
        first = torch.full((m,), len(r), dtype=torch.int64, device=dev)
        hit = dJ == val[r]
        first.scatter_reduce_(0, r[hit], pos[hit], "amin", include_self=True)
        has = first < len(r)
        sel = first.clamp(max=max(len(r) - 1, 0))
        if len(r):
            f = torch.where(has, f_all[sel], 0)
            new = torch.where(has, cand_b[sel], 0)
            dv = torch.where(has, u[sel] * step[f], 0.0)
            nb = torch.where(has, cand_bits[sel], 0.0)
        else:
            f = new = torch.zeros(m, dtype=torch.int64, device=dev)
            dv = nb = torch.zeros(m, device=dev)
        # the active features' bin - 1, + 1 and 0
        active = b != 0
        k = int(active.sum(1).max())
        if k:
            idx = torch.topk(active.to(torch.int8), k, dim=1, sorted=False).indices  # [m, k]
            on = torch.gather(active, 1, idx)
            ba, ca, na = torch.gather(b, 1, idx), torch.gather(c, 1, idx), torch.gather(nw, 1, idx)
            sa, ga = step[idx], g[idx]
            cand = torch.stack([ba - 1, ba + 1, torch.zeros_like(ba)], dim=2)  # [m, k, 3]
            da = (cand - ba[..., None]).to(torch.float32) * sa[..., None]
            bits = costs.feature_bits(cand, idx[..., None])  # [m, k, 3]
            dJa = bits - na[..., None] + mu * da * (da * ga[..., None] - 2 * ca[..., None])
            dJa = torch.where(on[..., None], dJa, inf)
            va, arg = dJa.view(m, -1).min(1)
            j, q = arg // 3, arg % 3
            rows = torch.arange(m, device=dev)
            use = va < val
            val = torch.where(use, va, val)
            f = torch.where(use, idx[rows, j], f)
            new = torch.where(use, cand[rows, j, q], new)
            dv = torch.where(use, da[rows, j, q], dv)
            nb = torch.where(use, bits[rows, j, q], nb)
        take = val < -1e-4
        if not take.any():
            break
        live, f, new, dv, nb = live[take], f[take], new[take], dv[take], nb[take]
        bins[live, f] = new
        now[live, f] = nb
        if gram is not None:
            corr[live] -= dv[:, None] * gram[f]
        else:
            resid[live] -= dv[:, None] * W[f]
    return bins


def optimise_codes(x: np.ndarray, codes: SparseCodes, decoder, quantiser, entropy_model: EntropyModel,
                   lam: float, device: str = "cpu", max_moves: int = DEFAULT_MAX_MOVES,
                   rounds: int = 1, refit: bool = True) -> SparseCodes:
    """Activations x [n, d_in] and their quantised code (``codes``, the SAE's) -> the code of each sample
    with the least J = bits + lam * squared error (lam in bits per unit of squared error summed over a
    sample's d_in values, x's units) found by the search of the module's docstring, on ``device``.
    J of each sample is never above the start's (under the search's bit estimate). ``rounds``: refit
    and greedy passes; ``refit``: whether to refit by least squares (only where d_sae^2 <= GRAM_LIMIT)."""
    if codes.n == 0:
        return codes
    dev = torch.device(device)
    s = float(decoder.input_scale)
    W = torch.tensor(decoder.W_dec, dtype=torch.float32, device=dev)
    b_dec = torch.tensor(decoder.b_dec, dtype=torch.float32, device=dev)
    step = torch.tensor(quantiser.step, dtype=torch.float32, device=dev)
    g = (W * W).sum(1).clamp(min=1e-30)
    costs = CostTables(entropy_model, dev)
    mu = float(lam) / (s * s)
    d = codes.d_sae
    gram = W @ W.T if d * d <= GRAM_LIMIT else None
    rows_per = max(1, _BATCH_ELEMS // (d * 4))
    dense = codes.to_dense()
    out = []
    with torch.no_grad():
        for a in range(0, codes.n, rows_per):
            target = torch.tensor(x[a:a + rows_per], dtype=torch.float32, device=dev) * s - b_dec
            bins = torch.tensor(dense[a:a + rows_per], dtype=torch.int64, device=dev)
            resid = target - (bins.to(torch.float32) * step) @ W
            J = start_J = _objective(bins, resid, costs, mu)
            start = bins.clone()
            corr = target @ W.T if refit and gram is not None else None
            for _ in range(rounds):
                if refit and gram is not None:
                    fit = _ls_refit(bins, corr, gram, step)
                    fit_resid = target - (fit.to(torch.float32) * step) @ W
                    better = _objective(fit, fit_resid, costs, mu) < J
                    bins = torch.where(better[:, None], fit, bins)
                    resid = torch.where(better[:, None], fit_resid, resid)
                bins = _greedy(bins, resid, W, g, step, costs, mu, max_moves, gram)
                resid = target - (bins.to(torch.float32) * step) @ W  # drift-free
                J = _objective(bins, resid, costs, mu)
            bins = torch.where((J <= start_J)[:, None], bins, start)  # float drift never makes a code worse
            out.append(bins.cpu().numpy())
    return SparseCodes.from_dense(np.concatenate(out))


def natural_lambda(decoder, step: float | np.ndarray) -> float:
    """The high-rate slope of a uniform quantiser at ``step`` (bits per unit of squared error, x's
    units): halving the step costs one bit per active latent and quarters its error step^2 |w|^2 /
    (12 s^2), so dR/dD = 6 s^2 / (ln 2 * step^2 * |w|^2), |w|^2 the decoder rows' mean squared norm
    and step the steps' geometric mean. The scale of ``lam`` (RDO) and of the per-feature allocation."""
    st = float(np.exp(np.mean(np.log(np.asarray(step, np.float64)))))
    g = float(np.mean(np.sum(np.asarray(decoder.W_dec, np.float64) ** 2, axis=1)))
    return 6.0 * float(decoder.input_scale) ** 2 / (math.log(2) * st * st * max(g, 1e-30))
