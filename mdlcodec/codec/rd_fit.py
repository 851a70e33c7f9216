"""Fitting a codec for the shortest code at a tolerance: per-feature quantisation steps and
rate-distortion optimised encoding (``rdo.py``), both chosen so that the test MSE (mean over samples
and dimensions, as ``precision.quantised_mse``) stays <= max_mse.

Everything is scaled by one base step Delta and the high-rate slope mu(Delta) = ``rdo.natural_lambda``:
- per-feature steps (``allocate_steps``): each feature's step from the grid Delta * 2^(k/4), k in
  -4..8, minimising its bits + kappa_steps * mu * distortion on the training split's latents
  (a Lagrangian allocation; bits: the feature's activity KT code and its bins' empirical entropy;
  distortion: its rounding error times its decoder row's squared norm, cross terms ignored);
- RDO: lambda = kappa_rdo * mu(Delta).
For each kappa the coarsest Delta meeting max_mse is found by bisection (coarse: tables of the plain
training codes; fine, within 2^(+-1/16): with RDO, tables refit once on the training split's optimised codes),
then fit and encode are iterated while the training split's bits drop, and Delta shrinks by
2^(-1/64) until the test MSE meets max_mse again. The shortest
test cross-entropy over the kappas wins. The decoder and the file format are those of any codec.
"""

from __future__ import annotations

import numpy as np

from mdlcodec.codec.codec import Codec
from mdlcodec.codec.decoder import Decoder, check_activations
from mdlcodec.codec.entropy_model import EntropyModel
from mdlcodec.codec.hierarchy import chow_liu
from mdlcodec.codec.precision import coarsest_step
from mdlcodec.codec.quantiser import Quantiser
from mdlcodec.codec.rdo import natural_lambda, optimise_codes
from mdlcodec.codec.sparse import SparseCodes, SparseLatents
from mdlcodec.core.errors import ModelError
from mdlcodec.models.peers import as_sae

STEP_GRID = 2.0 ** (np.arange(-4, 9) / 4)
"""Multipliers of the base step a feature may take (per-feature steps)."""
RDO_KAPPAS = (1.0, 1.4, 2.0)
"""RDO lambdas tried, as multiples of the natural one."""
STEP_KAPPAS = (1.0,)
"""Per-feature allocations tried, their distortion weight as multiples of the natural lambda."""
MAX_OUTER = 4


def _h2_bits(a: np.ndarray, n: int) -> np.ndarray:
    """n * H((a + 1/2) / (n + 1)) in bits: the KT activity code of a feature active a times in n."""
    p = (a + 0.5) / (n + 1.0)
    return -n * (p * np.log2(p) + (1 - p) * np.log2(1 - p))


def allocate_steps(decoder: Decoder, z: SparseLatents, base: float, kappa: float = 1.0,
                   grid: np.ndarray = STEP_GRID) -> np.ndarray:
    """[d_sae] float32 steps: each feature's from base * grid minimising its bits + kappa * mu(base) *
    distortion over the latents z of n samples (the module's docstring)."""
    _, feats, vals = z.csr()
    n, d = z.n, decoder.d_sae
    g = np.sum(decoder.W_dec.astype(np.float64) ** 2, axis=1) / float(decoder.input_scale) ** 2
    mu = kappa * natural_lambda(decoder, base)
    cost = np.zeros((len(grid), d))
    for i, m in enumerate(grid):
        s = np.float32(base * m)
        bins = np.rint(vals / s).astype(np.int64)
        err = (vals.astype(np.float64) - bins * np.float64(s)) ** 2
        dist = np.bincount(feats, weights=err, minlength=d) * g
        on = bins != 0
        f_on, b_on = feats[on], bins[on]
        a = np.bincount(f_on, minlength=d)
        bits = _h2_bits(a, n)
        if len(f_on):
            keys, counts = np.unique(np.stack([f_on, b_on]), axis=1, return_counts=True)
            tot = a[keys[0]]
            bits += np.bincount(keys[0], weights=-counts * np.log2(counts / tot), minlength=d)
        cost[i] = bits + mu * dist
    return (base * grid[np.argmin(cost, axis=0)]).astype(np.float32)


def _model(codes: SparseCodes, hierarchy: str) -> EntropyModel:
    model = EntropyModel.fit(codes)
    return model.with_hierarchy(chow_liu(codes)) if hierarchy == "chowliu" else model


class _Search:
    """The SAE's latents of both splits, and the codec built for a base step and kappas."""

    def __init__(self, sae, train_x: np.ndarray, test_x: np.ndarray, max_mse: float, device: str, hierarchy: str):
        if Codec.tree_parents(sae, hierarchy) is not None:
            raise ModelError("per-feature steps and RDO are not offered for a tree SAE's forest code; "
                             "use --hierarchy flat or chowliu", param="hierarchy")
        self.decoder = Decoder.from_sae(sae)
        self.encoder = Codec.sae_sparse_encoder(sae, device)
        self.train = check_activations(train_x, self.decoder.d_in, "training data")
        self.test = check_activations(test_x, self.decoder.d_in, "test data")
        self.z_train, self.z_test = self.encoder(self.train), self.encoder(self.test)
        self.max_mse, self.device, self.hierarchy = max_mse, device, hierarchy
        self.test64 = self.test.astype(np.float64)

    def mse(self, codec: Codec, codes: SparseCodes) -> float:
        return float(np.mean((codec.reconstruct(codes) - self.test64) ** 2))

    def build(self, base: float, k_steps: float | None, k_rdo: float | None, outer: int) -> tuple[Codec, SparseCodes, float]:
        """(codec, test codes, test bits/sample) at base step ``base``: per-feature steps at kappa
        k_steps (None: one step), RDO at k_rdo (None: plain), the tables refit up to ``outer`` times on
        the training split's optimised codes while its bits drop (0: the plain codes' tables)."""
        steps = (allocate_steps(self.decoder, self.z_train, base, k_steps) if k_steps is not None
                 else np.full(self.decoder.d_sae, base, np.float32))
        q = Quantiser(steps)
        plain_train = q.quantise_sparse(*self.z_train)
        model = _model(plain_train, self.hierarchy)
        lam = None if k_rdo is None else k_rdo * natural_lambda(self.decoder, steps)
        if lam is not None:
            best = None
            for i in range(outer):
                codes = optimise_codes(self.train, plain_train, self.decoder, q, model, lam, self.device)
                trial = _model(codes, self.hierarchy)
                bits = Codec(self.decoder, q, trial).chunk_coder.ideal_bits(codes)["total"]
                if best is not None and bits >= best:
                    break
                best, model = bits, trial
        codec = Codec(self.decoder, q, model, self.encoder, lam, self.device)
        codes = codec.quantise(self.z_test)  # what codec.latents(self.test) gives, the SAE run once in __init__
        if lam is not None:
            codes = codec.optimise(self.test, codes)
        return codec, codes, codec.chunk_coder.ideal_bits(codes)["total"] / len(self.test)

    def coarsest(self, lo: float, hi: float, k_steps, k_rdo, iters: int, outer: int) -> float:
        """The largest base step in [lo, hi] (bisection on log2) whose test MSE meets max_mse, the
        tables refit ``outer`` times on the training split's optimised codes at each try (0: the
        plain codes' tables); lo if none."""
        a, b = np.log2(lo), np.log2(hi)
        for _ in range(iters):
            mid = (a + b) / 2
            codec, codes, _ = self.build(2.0 ** mid, k_steps, k_rdo, outer)
            if self.mse(codec, codes) <= self.max_mse:
                a = mid
            else:
                b = mid
        return float(2.0 ** a)

    def fit(self, k_steps, k_rdo, plain_step: float) -> tuple[Codec, SparseCodes, float]:
        """Coarse bisection on the plain codes' tables (cheap), a fine one within 2^(+-1/16) (with RDO,
        the tables refit once at each try), then refits while they help, the step shrinking until the tolerance holds."""
        base = self.coarsest(plain_step / 2.0, plain_step * 1.6, k_steps, k_rdo, 7, 0)
        base = self.coarsest(base * 2.0 ** (-1 / 16), base * 2.0 ** (1 / 16), k_steps, k_rdo, 4,
                             0 if k_rdo is None else 1)
        for _ in range(64):
            codec, codes, bits = self.build(base, k_steps, k_rdo, MAX_OUTER)
            if self.mse(codec, codes) <= self.max_mse:
                return codec, codes, bits
            base *= 2.0 ** (-1 / 64)
        raise ModelError("no step met the tolerance with RDO or per-feature steps")  # pragma: no cover


def fit_rd_codec(sae, train_x: np.ndarray, test_x: np.ndarray, max_mse: float, device: str = "cpu",
                 hierarchy: str = "flat", per_feature: bool = True, rdo: bool = True,
                 kappas: tuple[float, ...] = RDO_KAPPAS, step_kappas: tuple[float, ...] = STEP_KAPPAS,
                 include_plain: bool = True,
                 configs: list[tuple[float | None, float | None]] | None = None) -> tuple[Codec, dict]:
    """The codec with the shortest test cross-entropy meeting max_mse among: the plain one (one step,
    ``precision.coarsest_step``; left out of the choice, though reported, if not ``include_plain``), and
    per-feature steps (at each of ``step_kappas``), RDO (at each of ``kappas``) and, with both, the
    two together (RDO at kappa 1), as asked (the module's docstring); or exactly ``configs``, pairs
    (step kappa or None for one step, RDO kappa or None for plain encoding).
    hierarchy "flat" or "chowliu" ("auto" is flat for an SAE without a forest).

    Returns (codec, report): report["variants"] lists each tried {per_feature, step_kappa, rdo, kappa, base_step,
    rdo_lambda, test_mse, bits_per_sample (test cross-entropy)}, report["chosen"] the winner's."""
    hierarchy = "flat" if hierarchy == "auto" else hierarchy
    s = _Search(as_sae(sae), train_x, test_x, max_mse, device, hierarchy)
    plain_step = coarsest_step(s.decoder, s.z_test, s.test, max_mse)
    variants = []

    def add(codec, codes, bits, k_steps, k):
        variants.append({"per_feature": k_steps is not None, "step_kappa": k_steps, "rdo": codec.rdo_lambda is not None,
                         "kappa": k,
                         "base_step": float(np.exp(np.mean(np.log(codec.quantiser.step)))),
                         "rdo_lambda": codec.rdo_lambda, "test_mse": s.mse(codec, codes), "bits_per_sample": bits,
                         "codec": codec})

    add(*s.build(plain_step, None, None, 1), None, None)
    if configs is None:
        configs = [(k, None) for k in step_kappas] if per_feature else []
        configs += [(None, r) for r in kappas] if rdo else []
        configs += [(k, 1.0) for k in step_kappas] if per_feature and rdo else []
    for k_steps, k_rdo in configs:
        add(*s.fit(k_steps, k_rdo, plain_step), k_steps, k_rdo)
    best = min(variants[0 if include_plain or not configs else 1:], key=lambda v: v["bits_per_sample"])
    report = {"variants": [{k: v for k, v in r.items() if k != "codec"} for r in variants],
              "chosen": {k: v for k, v in best.items() if k != "codec"}}
    return best["codec"], report
