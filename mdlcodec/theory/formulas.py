"""Description-length formulas from the paper (Ayonrinde, Pearce and Sharkey 2024), numpy only.

Every length is in bits. "Per sample" and "per token" mean the same thing here: the cost of
explaining one activation vector. Probabilities are of a feature being active (non-zero) in one
sample. Functions take scalars or numpy arrays and broadcast; they raise ValueError for inputs
outside their domain (the CLI turns that into one error line).

What is implemented, with the paper's place for it:
- Eq. 1 and Appendix B: `dl_bound_sparse`, `dl_dense`, `dl_onehot`.
- Section 6 / Figure 3 (feature splitting): `splitting_rho_min`, `splitting_joint`,
  `feature_splitting_dl`, `splitting_phase_boundary`.
- Section 7 / Figure 5 and Section 3 (directed trees): `hierarchy_dl`, `tree_dl`.
- The two-part code (latents, then the decoder once): `decoder_bits`, `two_part_bits_per_sample`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdlcodec.core.forest import forest_depths

#: Appendix B's printed description length of the one-hot dictionary, bits per token.
PAPER_ONEHOT_BITS = 13_993

_TOL = 1e-12  # slack for probabilities that float arithmetic pushes just outside [0, 1]


def _probability(p, name: str) -> np.ndarray:
    """`p` as a float array in [0, 1] (values within 1e-12 outside are clipped); ValueError otherwise."""
    a = np.asarray(p, dtype=np.float64)
    if np.isnan(a).any() or (a < -_TOL).any() or (a > 1 + _TOL).any():
        raise ValueError(f"{name} must be probabilities in [0, 1], got values from {np.nanmin(a):g} to {np.nanmax(a):g}")
    return np.clip(a, 0.0, 1.0)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# ---------------------------------------------------------------------------- entropies


def binary_entropy(p) -> np.ndarray:
    """Entropy of a Bernoulli(p) variable in bits: -p log2 p - (1-p) log2 (1-p), with H(0) = H(1) = 0.

    This is the activity cost of one boolean feature, bits per sample (the paper's H(p) in Sections
    6 and 7). Vectorised over any shape of `p`; a scalar gives a 0-d numpy float.
    """
    q = _probability(p, "p")
    out = np.zeros_like(q)
    m = (q > 0) & (q < 1)
    x = q[m]
    out[m] = -x * np.log2(x) - (1 - x) * np.log2(1 - x)
    return out[()]


def entropy_bits(probs) -> np.ndarray:
    """Entropy in bits of categorical distributions given along the last axis of `probs` [..., k].

    The paper's DL(z_i) = H(p_i) = -sum_z p_i(z) log2 p_i(z) (Section 3), bits per sample for one
    feature whose quantised values (the zero bin included) have probabilities `probs`. Terms with
    p = 0 contribute 0. Each row must sum to 1 within 1e-6.
    """
    p = _probability(probs, "probs")
    _check(p.ndim >= 1 and p.shape[-1] >= 1, f"probs must have a non-empty last axis, got shape {p.shape}")
    s = p.sum(axis=-1)
    _check(bool(np.all(np.abs(s - 1) <= 1e-6)), f"probs must sum to 1 along the last axis, got sums from {s.min():g} to {s.max():g}")
    logs = np.log2(np.where(p > 0, p, 1.0))
    return (-(p * logs).sum(axis=-1))[()]


# ---------------------------------------------------------------------------- Eq. 1, Appendix B


@dataclass(frozen=True)
class DLBreakdown:
    """A description length per token (bits) split into its parts.

    index_bits: bits naming which features are active (L0 * log2 D); value_bits: bits for their
    values (L0 * B); total_bits = index_bits + value_bits. log2_width is log2 D (bits per index).
    """

    index_bits: float
    value_bits: float
    total_bits: float
    log2_width: float


def _sparse(l0: float, log2_width: float, bits_per_value: float) -> DLBreakdown:
    index = l0 * log2_width
    value = l0 * bits_per_value
    return DLBreakdown(float(index), float(value), float(index + value), float(log2_width))


def _check_bits(bits_per_value: float) -> None:
    _check(np.isfinite(bits_per_value) and bits_per_value >= 0, f"bits per value must be >= 0, got {bits_per_value}")


def dl_bound_sparse(l0: float, width: int, bits_per_value: float) -> DLBreakdown:
    """The paper's Eq. 1 crude upper bound, DL <= L0 (B + log2 D), bits per token.

    `l0` is the mean number of active features per token, `width` the dictionary size D, and
    `bits_per_value` the precision B of each non-zero value. Appendix B (GPT-2 small layer 8,
    Bloom's SAE): L0 = 65, D = 25,000, B = 7 gives 949.6 index + 455 value = 1404.6, "about 1405".
    """
    _check(np.isfinite(l0) and l0 >= 0, f"L0 must be >= 0, got {l0}")
    _check(width >= 1, f"width must be >= 1 (the number of dictionary features), got {width}")
    _check_bits(bits_per_value)
    return _sparse(l0, np.log2(width), bits_per_value)


def dl_dense(d: int, bits_per_value: float) -> DLBreakdown:
    """Appendix B's dense explanation: send all d activations, DL = B d bits per token (no index bits).

    GPT-2 small, d = 768, B = 7: 5376 bits per token.
    """
    _check(d >= 1, f"d must be >= 1 (the activation dimension), got {d}")
    _check_bits(bits_per_value)
    return DLBreakdown(0.0, float(d * bits_per_value), float(d * bits_per_value), 0.0)


@dataclass(frozen=True)
class OneHotDL:
    """Appendix B's one-hot extreme: one dictionary row per possible context, L0 = 1, D = vocab**seq.

    eq1: what Eq. 1 gives, 1 * (B + log2 D) bits per token. paper_printed: the paper's 13,993.
    product_reading: B * log2 D, the reading that reproduces the printed figure. note: one line
    that says how the two relate.
    """

    eq1: DLBreakdown
    paper_printed: int
    product_reading: float
    note: str


def dl_onehot(vocab: int, seq: int, bits_per_value: float) -> OneHotDL:
    """Appendix B's one-hot encoding under Eq. 1, bits per token.

    The paper's dictionary has "a row for each neural activation in the dataset, so L0 = 1 and
    D = (vocab size)^(seq len)": every possible context of `seq` tokens is one feature. log2 D =
    seq log2 vocab (computed without forming D). Eq. 1 then gives 1 * (B + seq log2 vocab); for
    GPT-2 (vocab 50,257, seq 128, B = 7) that is 7 + 1998.98 = 2005.98 bits per token. The paper
    prints 13,993, which is B * log2 D = 7 x 1998.98 = 13,992.9, i.e. the product 7 x 1999 where
    Eq. 1 has the sum 7 + 1999. Both are returned, with that note.
    """
    _check(vocab >= 2, f"vocab must be >= 2, got {vocab}")
    _check(seq >= 1, f"seq must be >= 1, got {seq}")
    _check_bits(bits_per_value)
    log2_d = seq * np.log2(vocab)
    eq1 = _sparse(1.0, log2_d, bits_per_value)
    product = float(bits_per_value * log2_d)
    note = (f"Eq. 1 (L0 = 1, log2 D = {seq} x log2 {vocab} = {log2_d:.2f}) gives {bits_per_value:g} + {log2_d:.2f} "
            f"= {eq1.total_bits:.2f} bits/token; the paper's printed {PAPER_ONEHOT_BITS:,} is {bits_per_value:g} x "
            f"{log2_d:.2f} = {product:,.2f}, a product B x log2 D where Eq. 1 has the sum B + log2 D")
    return OneHotDL(eq1, PAPER_ONEHOT_BITS, product, note)


# ---------------------------------------------------------------------------- Figure 3


def splitting_rho_min(p) -> np.ndarray:
    """Smallest Pearson correlation two Bernoulli(p) bits can have: (max(0, 2p-1) - p^2) / (p (1-p)).

    The valid range of rho for Figure 3 at p_A = p_B = p is [splitting_rho_min(p), 1] (for p in (0, 1)).
    At the lower end P(A and B) = max(0, 2p - 1), at rho = 1 A and B are the same bit.
    """
    q = _probability(p, "p")
    _check(bool(np.all((q > 0) & (q < 1))), "p must be strictly between 0 and 1 for a correlation to exist")
    return ((np.maximum(0.0, 2 * q - 1) - q * q) / (q * (1 - q)))[()]


def splitting_joint(p, rho) -> dict[str, np.ndarray]:
    """Joint distribution of booleans A, B with P(A) = P(B) = p and Pearson correlation rho (Figure 3).

    P(A and B) = p^2 + rho p (1 - p); returns arrays p11 = P(A and B), p10 = P(A and not B) =
    p01 = P(B and not A) = p - p11, p00 = 1 - 2p + p11, broadcast over p and rho. ValueError
    where rho is outside [splitting_rho_min(p), 1].
    """
    q = _probability(p, "p")
    r = np.asarray(rho, dtype=np.float64)
    q, r = np.broadcast_arrays(q, r)
    lo = splitting_rho_min(q)
    bad = np.isnan(r) | (r < lo - 1e-9) | (r > 1 + 1e-9)
    _check(not bad.any(), f"rho out of range for p: e.g. p = {q[bad][:1]}, rho = {r[bad][:1]} "
                          f"(valid: [splitting_rho_min(p), 1])")
    p11 = np.clip(q * q + r * q * (1 - q), np.maximum(0.0, 2 * q - 1), q)
    p10 = q - p11
    return {"p11": p11, "p10": p10, "p01": p10.copy(), "p00": 1 - 2 * q + p11}


@dataclass(frozen=True)
class SplittingDL:
    """Figure 3's two dictionaries, per sample (arrays broadcast over p and rho).

    unsplit_l0, unsplit_dl: features {A, B}; split_l0, split_dl: features {A&~B, B&~A, A&B}.
    L0 in active features per sample, DL in bits per sample.
    """

    unsplit_l0: np.ndarray
    unsplit_dl: np.ndarray
    split_l0: np.ndarray
    split_dl: np.ndarray


def feature_splitting_dl(p, rho, bits_per_value: float = 0.0) -> SplittingDL:
    """Description lengths of Figure 3's unsplit and split dictionaries, bits per sample.

    Each feature is coded on its own (the paper's independent additivity), so a dictionary costs
    the sum of its features' binary entropies, not the joint entropy of (A, B):
      unsplit {A, B}:            L0 = 2p,              DL = H(p) + H(p)
      split {A&~B, B&~A, A&B}:   L0 = 2p - P(A and B), DL = 2 H(p - P(A and B)) + H(P(A and B))
    Each active feature also pays `bits_per_value` bits for its value (DL += L0 * B); the default 0
    counts activity only, as in the paper's boolean toy. At rho = 0 (independent bits) the unsplit
    dictionary is shorter whenever 0 < p < 1: its code is then exactly the joint entropy, and the
    split one's three dependent features cost more than the joint entropy. At rho = 1 the split one
    is shorter by H(p) (+ B p).
    """
    _check_bits(bits_per_value)
    j = splitting_joint(p, rho)
    q = np.broadcast_to(_probability(p, "p"), j["p11"].shape)
    unsplit_l0 = 2 * q
    split_l0 = 2 * q - j["p11"]
    unsplit = 2 * binary_entropy(q) + bits_per_value * unsplit_l0
    split = 2 * binary_entropy(j["p10"]) + binary_entropy(j["p11"]) + bits_per_value * split_l0
    return SplittingDL(unsplit_l0[()], np.asarray(unsplit)[()], split_l0[()], np.asarray(split)[()])


def splitting_phase_boundary(p, bits_per_value: float = 0.0, grid: int = 513, iters: int = 80) -> np.ndarray:
    """Figure 3C's phase boundary: for each p, the rho at which DL_split = DL_unsplit.

    Above it the split dictionary is shorter, below it the unsplit one. Per p: a scan of `grid`
    points over (splitting_rho_min(p), 1] finds the last point where DL_split - DL_unsplit > 0,
    then `iters` bisection steps between it and the next point; vectorised over p (any shape, each
    in (0, 1)). A root exists: the difference is > 0 just above rho_min (H(x) rises steeply at
    x = 0) and is -H(p) - B p < 0 at rho = 1. With bits_per_value = 0 the difference is > 0 at
    rho = 0 (see feature_splitting_dl), so the boundary lies in (0, 1). Returns rho, same shape as
    p; NaN where the unsplit dictionary is never shorter (with a large bits_per_value and p > 1/2
    the split one wins on the whole valid range; for p <= 1/2 a root always exists, perhaps within
    a hair of rho_min).
    """
    q = _probability(p, "p")
    lo = np.asarray(splitting_rho_min(q), dtype=np.float64)
    shape = q.shape
    q, lo = q.reshape(-1, 1), lo.reshape(-1, 1)

    def diff(r: np.ndarray) -> np.ndarray:
        d = feature_splitting_dl(np.broadcast_to(q, r.shape), r, bits_per_value)
        return np.asarray(d.split_dl - d.unsplit_dl)

    t = np.linspace(0.0, 1.0, grid)[1:]  # exclude rho_min itself, where the two tie for p <= 1/2
    r = lo + (1 - lo) * t
    pos = diff(r) > 0
    last = np.where(pos.any(axis=1), grid - 2 - np.argmax(pos[:, ::-1], axis=1), -1)
    rows = np.arange(len(q))
    a = np.where(last >= 0, r[rows, np.maximum(last, 0)], lo[:, 0])  # diff(a) > 0 (or a = rho_min)
    b = r[rows, np.minimum(last + 1, grid - 2)]  # diff(b) <= 0
    for _ in range(iters):
        m = (a + b) / 2
        up = diff(m[:, None])[:, 0] > 0
        a, b = np.where(up, m, a), np.where(up, b, m)
    found = (last >= 0) | (diff(lo)[:, 0] >= 0)  # a tie at rho_min (p <= 1/2) has the root just above it
    return np.where(found, (a + b) / 2, np.nan).reshape(shape)[()]


# ---------------------------------------------------------------------------- Figure 5, trees


@dataclass(frozen=True)
class HierarchyDL:
    """Figure 5's "Animal" A and "Bird" B (B implies A), per sample.

    flat_*: mutually exclusive features {A&~B, B}; tree_*: A, then B only when A fired.
    L0 in active features per sample, DL in bits per sample.
    """

    flat_l0: np.ndarray
    flat_dl: np.ndarray
    tree_l0: np.ndarray
    tree_dl: np.ndarray


def hierarchy_dl(p_a, p_b_given_a, bits_per_value: float = 0.0) -> HierarchyDL:
    """Section 7 / Figure 5: flat against tree coding of a parent A and a child B, bits per sample.

    With p_B = p_A p_{B|A}:
      flat:  L0 = p_A,        DL = H(p_A - p_B) + H(p_B)
      tree:  L0 = p_A + p_B,  DL = H(p_A) + p_A H(p_{B|A})
    (The paper prints the tree's L0 as p_A + p_{B|A}; the expected count of active features is
    p_A + p_A p_{B|A}.) The tree's DL is the joint entropy of (A, B), so it is never longer, and it
    is shorter whenever 0 < p_A and 0 < p_{B|A} < 1; equal at p_{B|A} in {0, 1} and p_A = 0.
    Each active feature also pays `bits_per_value` bits (DL += L0 * B; default 0, activity only).
    Broadcast over p_a and p_b_given_a.
    """
    _check_bits(bits_per_value)
    pa, q = np.broadcast_arrays(_probability(p_a, "p_A"), _probability(p_b_given_a, "p_B|A"))
    pb = pa * q
    flat_l0, tree_l0 = pa, pa + pb
    flat = binary_entropy(pa - pb) + binary_entropy(pb) + bits_per_value * flat_l0
    tree = binary_entropy(pa) + pa * binary_entropy(q) + bits_per_value * tree_l0
    return HierarchyDL(flat_l0[()], np.asarray(flat)[()], tree_l0[()], np.asarray(tree)[()])


def tree_dl(p_active, parents, bits_per_value: float = 0.0) -> float:
    """Activity description length of a forest of features, bits per sample (Section 3, issue 5).

    p_active [D]: marginal probability that each feature is active; parents [D]: parent index, -1
    for a root. A child fires only when its parent fires, so P(child | parent) = p_child / p_parent
    and its activity is sent only when the parent fired:
      DL = sum_roots H(p_root) + sum_children p_parent H(p_child / p_parent)  (+ B sum_i p_i)
    If siblings are independent given their parent (a Bayesian network on the forest), this equals
    the joint entropy of all D activity bits. `bits_per_value` adds B bits per active feature.
    ValueError if a child is more probable than its parent, or parents is not a forest.
    """
    _check_bits(bits_per_value)
    p = _probability(p_active, "p_active")
    par = np.asarray(parents)
    _check(p.ndim == 1 and par.shape == p.shape, f"p_active and parents must be 1-D of one length, got {p.shape} and {par.shape}")
    _check(np.issubdtype(par.dtype, np.integer) or len(par) == 0, f"parents must be integers, got dtype {par.dtype}")
    par = par.astype(np.int64)
    forest_depths(par)  # ForestError (a ValueError) if not a forest
    root = par < 0
    pp = np.where(root, 1.0, p[np.maximum(par, 0)])
    _check(bool(np.all(p <= pp + _TOL)), "a child is more probable than its parent: it cannot fire only with it")
    cond = np.where(pp > 0, np.minimum(p / np.where(pp > 0, pp, 1.0), 1.0), 0.0)
    return float(np.sum(pp * binary_entropy(cond)) + bits_per_value * p.sum())


# ---------------------------------------------------------------------------- two-part code


def decoder_bits(d_sae: int, d_in: int, bits_per_weight: float) -> float:
    """Bits to send the decoder once (the model part of the two-part code): W_dec [d_sae, d_in] and
    b_dec [d_in], each weight at `bits_per_weight` bits: (d_sae + 1) * d_in * bits_per_weight.
    """
    _check(d_sae >= 1 and d_in >= 1, f"d_sae and d_in must be >= 1, got {d_sae} and {d_in}")
    _check(np.isfinite(bits_per_weight) and bits_per_weight >= 0, f"bits per weight must be >= 0, got {bits_per_weight}")
    return float((d_sae + 1) * d_in * bits_per_weight)


def two_part_bits_per_sample(latent_bits_per_sample: float, model_bits: float, n_samples: int) -> float:
    """Two-part code per sample: the latents' bits per sample plus the model's bits shared over n_samples.

    DL = |z|_bits + |Dec|_bits (DESIGN.md section 1), divided by the number of samples sent.
    """
    _check(n_samples >= 1, f"n_samples must be >= 1, got {n_samples}")
    _check(latent_bits_per_sample >= 0 and model_bits >= 0, "bit counts must be >= 0")
    return float(latent_bits_per_sample + model_bits / n_samples)
