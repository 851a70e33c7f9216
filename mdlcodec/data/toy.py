"""Synthetic activations from a toy model of superposition, with their ground truth.

The model: F = n_features true directions u_i in R^d (Gaussian rows normalised to unit length).
A sample is x = sum_i a_i m_i u_i + noise * N(0, I_d), where
- a_i in {0, 1} says whether feature i fires. Marginals follow a power law over features,
  P(a_i = 1) = p_i = min(c (i + 1)^-alpha, 0.9), with c chosen so that E[L0] = sum_i p_i = l0;
- m_i ~ Uniform(0.5, 1.5), independent of everything else (the magnitude when it fires);
- roots fire independently, except for two planted structures that keep every marginal p_i:
  * hierarchy=H: the H rarest features F-H+j (j < H) are children of the H most frequent
    features j; a child fires only when its parent fires, with P(child | parent) = p_child / p_parent;
  * correlated=C, rho: the features (H+2k, H+2k+1), k < C, form pairs whose activity bits have
    Pearson correlation rho, i.e. P(both) = p_a p_b + rho sqrt(p_a (1-p_a) p_b (1-p_b)).
Samples are i.i.d.; the first n - n // 5 train and the last n // 5 test (as for files).
Generation is vectorised per feature (O(F) Python steps, O(nnz * d) numpy work) and bit-identical
for a seed: one numpy PCG64 stream, drawn in a fixed order, sums taken in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from mdlcodec.core.errors import DataError
from mdlcodec.data.dataset import Dataset, split_index

P_MAX = 0.9                       # no feature fires more often than this
MAGNITUDE_RANGE = (0.5, 1.5)      # m_i ~ Uniform(MAGNITUDE_RANGE)


@dataclass(frozen=True)
class ToyConfig:
    """Parameters of the toy model (see the module docstring); defaults are spec `toy`."""

    n_features: int = 64
    d: int = 32
    l0: float = 3.0
    alpha: float = 0.5
    hierarchy: int = 0
    correlated: int = 0
    rho: float = 0.5
    noise: float = 0.0
    n: int = 20000
    seed: int = 0


PRESETS: dict[str, ToyConfig] = {
    "default": ToyConfig(),
    # a synthetic LM-like set: residual-stream width, thousands of features, L0 about 64
    "lm": ToyConfig(n_features=4096, d=768, l0=64.0, alpha=0.5, n=20000),
}


@dataclass
class SparseActivity:
    """Which features fire in each of n samples, as CSR: sample r's active features are
    indices[indptr[r]:indptr[r + 1]] (ascending), with magnitudes values[...] (float32)."""

    indptr: np.ndarray   # [n + 1] int64
    indices: np.ndarray  # [nnz] int32
    values: np.ndarray   # [nnz] float32
    n_features: int

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def l0(self) -> np.ndarray:
        """Number of active features per sample [n]."""
        return np.diff(self.indptr)

    def rows(self, start: int, stop: int) -> SparseActivity:
        """Samples start..stop-1."""
        a, b = self.indptr[start], self.indptr[stop]
        return SparseActivity(self.indptr[start:stop + 1] - a, self.indices[a:b], self.values[a:b], self.n_features)

    def to_dense(self) -> np.ndarray:
        """Activity bits as bool [n, F] (for small sets only)."""
        out = np.zeros((self.n, self.n_features), dtype=bool)
        out[np.repeat(np.arange(self.n), self.l0()), self.indices] = True
        return out


@dataclass
class ToyTruth:
    """Ground truth of a toy dataset. Probabilities are exact (not empirical)."""

    config: ToyConfig
    directions: np.ndarray       # [F, d] float32 unit rows
    probs: np.ndarray            # [F] float64, marginal P(feature i active)
    parents: np.ndarray          # [F] int64, parent feature or -1 for roots
    pairs: np.ndarray            # [C, 2] int64, correlated pairs
    p_both: np.ndarray           # [C] float64, P(both features of a pair active)
    train_activity: SparseActivity
    test_activity: SparseActivity = field(repr=False)

    def entropy_bits_per_sample(self) -> float:
        """True entropy of the activity pattern (which features fire), bits per sample:
        sum of H(p_i) over independent roots, the joint entropy of each correlated pair, and
        p_parent * H(P(child | parent)) for each child."""
        h = 0.0
        in_pair = np.zeros(len(self.probs), dtype=bool)
        in_pair[self.pairs.ravel()] = True
        for (a, b), p11 in zip(self.pairs, self.p_both):
            pa, pb = self.probs[a], self.probs[b]
            h += _entropy_bits(np.array([p11, pa - p11, pb - p11, 1 - pa - pb + p11]))
        for i, (p, parent) in enumerate(zip(self.probs, self.parents)):
            if parent >= 0:
                q = p / self.probs[parent]
                h += self.probs[parent] * _entropy_bits(np.array([q, 1 - q]))
            elif not in_pair[i]:
                h += _entropy_bits(np.array([p, 1 - p]))
        return float(h)


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def power_law_probs(n_features: int, alpha: float, l0: float) -> np.ndarray:
    """p_i = min(c (i + 1)^-alpha, P_MAX) with c found by bisection so that sum p_i = l0."""
    if not 0 < l0 <= P_MAX * n_features:
        raise DataError(f"toy: l0={l0} must be in (0, {P_MAX} * n_features = {P_MAX * n_features:g}]")
    w = np.arange(1, n_features + 1, dtype=np.float64) ** -alpha
    lo, hi = 0.0, P_MAX / w[-1]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.minimum(mid * w, P_MAX).sum() < l0 else (lo, mid)
    return np.minimum(hi * w, P_MAX)


def parse_toy_options(options: str) -> ToyConfig:
    """ToyConfig from `key=value,...` (after `toy:`); a bare word or preset=NAME picks a preset
    (default, lm) that the other keys then override."""
    kinds = {f.name: f.type for f in fields(ToyConfig)}
    preset, values = "default", {}
    for part in filter(None, (p.strip() for p in options.split(","))):
        key, sep, val = (s.strip() for s in part.partition("="))
        if not sep and key in PRESETS or key == "preset":
            preset = key if not sep else val
            if preset not in PRESETS:
                raise DataError(f"toy: unknown preset '{preset}' (known: {', '.join(PRESETS)})")
            continue
        if key not in kinds:
            raise DataError(f"toy: unknown key '{key}' (known: preset, {', '.join(kinds)})")
        if not sep:
            raise DataError(f"toy: key '{key}' needs a value ({key}=...)")
        is_int = kinds[key] in ("int", int)
        try:
            values[key] = int(val) if is_int else float(val)
        except ValueError:
            raise DataError(f"toy: {key}={val!r} is not {'an integer' if is_int else 'a number'}") from None
    return replace(PRESETS[preset], **values)


def _validate(c: ToyConfig) -> None:
    checks = [
        (c.n_features >= 1, f"n_features={c.n_features} must be >= 1"), (c.d >= 1, f"d={c.d} must be >= 1"),
        (c.n >= 2, f"n={c.n} must be >= 2 (train and test)"), (c.seed >= 0, f"seed={c.seed} must be >= 0"),
        (np.isfinite(c.alpha) and c.alpha >= 0, f"alpha={c.alpha} must be >= 0"),
        (np.isfinite(c.noise) and c.noise >= 0, f"noise={c.noise} must be >= 0"),
        (-1 <= c.rho <= 1, f"rho={c.rho} must be in [-1, 1]"),
        (c.hierarchy >= 0, f"hierarchy={c.hierarchy} must be >= 0"),
        (c.correlated >= 0, f"correlated={c.correlated} must be >= 0"),
        (2 * c.hierarchy + 2 * c.correlated <= c.n_features,
         f"2 * hierarchy + 2 * correlated = {2 * c.hierarchy + 2 * c.correlated} must be <= n_features = "
         f"{c.n_features} (parents, children and pairs are distinct features)"),
    ]
    for ok, message in checks:
        if not ok:
            raise DataError(f"toy: {message}")


def make_toy(config: ToyConfig | None = None, spec: str = "toy") -> Dataset:
    """Generate the toy dataset [n, d] float32 with its ToyTruth (see the module docstring)."""
    c = config or ToyConfig()
    _validate(c)
    F, n, H = c.n_features, c.n, c.hierarchy
    probs = power_law_probs(F, c.alpha, c.l0)
    parents = np.full(F, -1, dtype=np.int64)
    parents[F - H:] = np.arange(H)
    pairs = (c.hierarchy + np.arange(2 * c.correlated)).reshape(-1, 2).astype(np.int64)
    pa, pb = probs[pairs[:, 0]], probs[pairs[:, 1]]
    p_both = pa * pb + c.rho * np.sqrt(pa * (1 - pa) * pb * (1 - pb))
    bad = (p_both < np.maximum(0, pa + pb - 1) - 1e-12) | (p_both > np.minimum(pa, pb) + 1e-12)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"toy: rho={c.rho} is impossible for the pair of features ({pairs[k, 0]}, {pairs[k, 1]}) "
                        f"with p = {pa[k]:.4g}, {pb[k]:.4g}")
    p_both = np.clip(p_both, np.maximum(0, pa + pb - 1), np.minimum(pa, pb))

    rng = np.random.default_rng(c.seed)
    directions = rng.standard_normal((F, c.d))
    directions = (directions / np.linalg.norm(directions, axis=1, keepdims=True)).astype(np.float32)

    # Which samples each feature fires in: roots, then pairs, then children (a fixed draw order).
    fires: list[np.ndarray] = [np.empty(0, np.int64)] * F
    for i in np.flatnonzero((parents < 0) & ~np.isin(np.arange(F), pairs)):
        fires[i] = rng.choice(n, rng.binomial(n, probs[i]), replace=False)
    for (a, b), p11 in zip(pairs, p_both):
        n11, n10, n01, _ = rng.multinomial(n, np.clip([p11, probs[a] - p11, probs[b] - p11,
                                                       1 - probs[a] - probs[b] + p11], 0, 1))
        rows = rng.choice(n, n11 + n10 + n01, replace=False)
        fires[a], fires[b] = rows[:n11 + n10], np.concatenate([rows[:n11], rows[n11 + n10:]])
    for i in np.flatnonzero(parents >= 0):
        up = fires[parents[i]]
        fires[i] = rng.choice(up, rng.binomial(len(up), probs[i] / probs[parents[i]]), replace=False)

    rows = np.concatenate(fires)
    feats = np.repeat(np.arange(F, dtype=np.int32), [len(f) for f in fires])
    order = np.lexsort((feats, rows))
    rows, feats = rows[order], feats[order]
    values = rng.uniform(*MAGNITUDE_RANGE, size=len(rows)).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    activity = SparseActivity(indptr, feats, values, F)

    # x = sum of active features, added slot by slot (ascending feature order within each sample),
    # in blocks of rows that stay in cache
    x = np.zeros((n, c.d), dtype=np.float32)
    l0 = activity.l0()
    for start in range(0, n, 512):
        block, block_l0 = x[start:start + 512], l0[start:start + 512]
        for s in range(int(block_l0.max())):
            r = np.flatnonzero(block_l0 > s)
            pos = indptr[start + r] + s
            block[r] += values[pos, None] * directions[feats[pos]]
    if c.noise > 0:
        x += np.float32(c.noise) * rng.standard_normal((n, c.d), dtype=np.float32)

    n_train = split_index(n, spec)
    truth = ToyTruth(c, directions, probs, parents, pairs, p_both,
                     activity.rows(0, n_train), activity.rows(n_train, n))
    name = (f"toy: {F} features in d={c.d}, L0 {probs.sum():.3g}, {n_train} train / {n - n_train} test"
            + (f", hierarchy {H}" if H else "") + (f", {c.correlated} pairs rho={c.rho:g}" if c.correlated else "")
            + (f", noise {c.noise:g}" if c.noise else ""))
    return Dataset(name=name, spec=spec, train=x[:n_train], test=x[n_train:], truth=truth)
