"""Fitting a codec for the shortest code at a tolerance: per-feature quantisation steps and
rate-distortion optimised encoding (``rdo.py``), both chosen so that the test MSE (mean over samples
and dimensions, as ``precision.quantised_mse``) stays <= max_mse.

Everything is scaled by one base step Delta and the high-rate slope mu(Delta) = ``rdo.natural_lambda``:
- per-feature steps (``steps.allocate_steps``): each feature's step from the grid Delta * 2^(k/4), k in
  -4..8, minimising its bits + kappa_steps * mu * distortion on the training split's latents
  (a Lagrangian allocation; bits: the feature's activity KT code and its bins' empirical entropy;
  distortion: its rounding error times its decoder row's squared norm, cross terms ignored);
- RDO: lambda = kappa_rdo * mu(Delta).

The search (``_Search``), made to cost a few plain fits rather than hundreds of RDO passes:
- the SAE runs once per split (or not at all: ``latents``); everything after works on its latents;
- each variant (step kappa, RDO kappa) is searched on fixed subsamples, at most
  ``SEARCH_TRAIN_ROWS`` rows of the training split (the tables are counted there) and
  ``SEARCH_TEST_ROWS`` of the test split (the MSE and bits are measured there; its target is
  max_mse times the ratio of the subsample's MSE to the whole split's for the plain code, a control
  variate that makes the subsample's verdict the whole split's);
- one "trial" at a base step: steps, lambda; with RDO, the training rows optimised under warm
  tables (those of the previous trial's optimised codes, re-quantised to the new steps: one
  iteration of the tables' fixed point per trial, as the step converges), the tables refit on them,
  then the test rows optimised under those tables;
- the base step solves MSE = target by safeguarded secant steps on (log2 step, log MSE) from a warm
  guess (the previous variant's step), stopping within ``MSE_SLACK`` below the target: a handful of
  trials per variant instead of a bisection's dozen with inner table refits;
- the shortest variant on the search rows wins; only it is coded on the whole test split (its final
  tables counted on the training split: all of it for plain codes, ``TABLE_TRAIN_ROWS`` rows
  optimised for RDO), the step shrinking by the measured slope until the whole split meets max_mse;
  if the whole split then finds it longer than the plain code, the plain code is kept.
With splits no larger than the subsamples, the search rows are the splits and the figures exact.
The decoder and the file format are those of any codec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mdlcodec.codec.codec import Codec
from mdlcodec.codec.decoder import Decoder, check_activations
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.hierarchy import chow_liu
from mdlcodec.codec.rate.quantiser import MAX_BIN, Quantiser
from mdlcodec.codec.rate.rdo import natural_lambda, optimise_codes
from mdlcodec.codec.rate.steps import MSE_BLOCK, allocate_csr, fast_coarsest_step, fast_sq_error
from mdlcodec.codec.sparse import SparseCodes, SparseLatents
from mdlcodec.core.errors import ModelError
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.models.peers import as_sae

RDO_KAPPAS = (1.0, 1.4, 2.0)
"""RDO lambdas tried, as multiples of the natural one."""
STEP_KAPPAS = (1.0,)
"""Per-feature allocations tried, their distortion weight as multiples of the natural lambda."""
SEARCH_TRAIN_ROWS = 8192
"""Most training rows whose (optimised) codes the tables are counted on during the search."""
SEARCH_TEST_ROWS = 8192
"""Most test rows the search measures MSE and bits on (the chosen codec is checked on all of them)."""
TABLE_TRAIN_ROWS = 32768
"""Most training rows whose optimised codes the chosen RDO codec's final tables count."""
MSE_SLACK = 0.002
"""A trial whose MSE is within this fraction below the target ends a variant's search."""
MAX_TRIALS = 6
"""Most trials of one variant's step search (then its best trial within the tolerance is kept)."""
WARM_RANGE = 0.25
"""Largest change of log2 step over which a trial starts from another's tables."""
MAX_FINAL = 8
"""Most shrinking steps on the whole test split."""
ESTIMATE_RANGE = 0.01
"""A variant estimated from one trial takes a second where the first's ln(MSE / target) is further off."""
SEED = 0
"""The subsamples' random rows (fixed: a fit is reproducible)."""


def _model(codes: SparseCodes, hierarchy: str) -> EntropyModel:
    model = EntropyModel.fit(codes)
    return model.with_hierarchy(chow_liu(codes)) if hierarchy == "chowliu" else model


def _rows_of(z: SparseLatents, idx: np.ndarray | None) -> SparseLatents:
    return z if idx is None else SparseLatents(np.asarray(z.values)[idx], np.asarray(z.indices)[idx])


def _subsample(n: int, most: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row numbers of a random subsample of ``most`` of n rows, or None (all of them) if n <= most."""
    return None if n <= most else np.sort(rng.choice(n, most, replace=False))


def _requantise(codes: SparseCodes, old: np.ndarray, new: np.ndarray) -> SparseCodes:
    """Codes of one quantiser's steps moved to another's (each value bin * old step rounded to new
    steps; entries rounding to 0 dropped): a warm start for the tables at a nearby step."""
    f = codes.indices
    bins = np.rint(codes.bins.astype(np.float64) * (old[f].astype(np.float64) / new[f]))
    bins = np.clip(bins, -MAX_BIN, MAX_BIN).astype(np.int32)
    keep = bins != 0
    return SparseCodes.from_rows(codes.rows()[keep], f[keep], bins[keep], codes.n, codes.d_sae)


@dataclass
class _Split:
    """Rows of one split as the search uses them: activations x (float32; None where not needed) and
    the SAE's latents z."""

    x: np.ndarray | None
    z: SparseLatents

    def __post_init__(self):
        self.n = self.z.n


@dataclass
class _Trial:
    """One codec tried at a base step: its quantiser, tables, lambda, and what it gave on the rows it
    was measured on (codes, MSE, bits per sample); train: the training rows' codes the tables count."""

    x: float  # log2 of the base step
    codec: Codec
    codes: SparseCodes
    mse: float
    bits: float
    train: SparseCodes | None = None


def _variant_name(k_steps: float | None, k_rdo: float | None) -> str:
    parts = ([f"per-feature steps (kappa {k_steps:g})"] if k_steps is not None else []) + \
            ([f"RDO (kappa {k_rdo:g})"] if k_rdo is not None else [])
    return " + ".join(parts) or "plain"


class _Search:
    """The SAE's latents of both splits, their subsamples, and the codecs tried (the module's docstring)."""

    def __init__(self, sae, train_x: np.ndarray, test_x: np.ndarray, max_mse: float, device: str, hierarchy: str,
                 latents: tuple[SparseLatents, SparseLatents] | None = None, progress: Progress = quiet):
        if Codec.tree_parents(sae, hierarchy) is not None:
            raise ModelError("per-feature steps and RDO are not offered for a tree SAE's forest code; "
                             "use --hierarchy flat or chowliu", param="hierarchy")
        self.decoder = Decoder.from_sae(sae)
        self.encoder = Codec.sae_sparse_encoder(sae, device)
        self.max_mse, self.device, self.hierarchy, self.progress = max_mse, device, hierarchy, progress
        d_in = self.decoder.d_in
        test = check_activations(test_x, d_in, "test data")
        if latents is None:
            progress(f"SAE latents of {len(train_x)} training and {len(test)} test rows")
            train = check_activations(train_x, d_in, "training data")
            z_train, z_test = self.encoder(train), self.encoder(test)
        else:
            z_train, z_test = (SparseLatents(*z) for z in latents)
            train = np.asarray(train_x)
            if train.ndim != 2 or train.shape[1] != d_in:
                check_activations(train, d_in, "training data")  # raises the usual message
            if z_train.n != len(train) or z_test.n != len(test):
                raise ModelError(f"latents for {z_train.n} training and {z_test.n} test rows, but the splits "
                                 f"have {len(train)} and {len(test)}", param="latents")
        rng = np.random.default_rng(SEED)
        i_tr, i_te = _subsample(len(train), SEARCH_TRAIN_ROWS, rng), _subsample(len(test), SEARCH_TEST_ROWS, rng)
        i_tab = _subsample(len(train), max(TABLE_TRAIN_ROWS, SEARCH_TRAIN_ROWS), np.random.default_rng(SEED + 1))

        def rows(idx: np.ndarray | None, what: str) -> np.ndarray:
            return check_activations(train if idx is None else train[idx], d_in, what)
        self.train = _Split(rows(i_tr, "training data"), _rows_of(z_train, i_tr))
        self.train_all = self.train if i_tr is None else _Split(None, z_train)
        self.tables = self.train if i_tr is None else _Split(rows(i_tab, "training data"), _rows_of(z_train, i_tab))
        self.test_all = _Split(test, z_test)
        self.test = self.test_all if i_te is None else _Split(test[i_te], _rows_of(z_test, i_te))
        self.subsampled = i_te is not None or i_tr is not None
        self._csr = self.train.z.csr()  # the training rows' entries, for the per-feature allocation
        self.target = max_mse

    # -- codecs at a step ---------------------------------------------------------------------
    def steps(self, base: float, k_steps: float | None) -> np.ndarray:
        if k_steps is None:
            return np.full(self.decoder.d_sae, base, np.float32)
        _, feats, vals = self._csr
        return allocate_csr(self.decoder, self.train.n, feats, vals, base, k_steps)

    @staticmethod
    def mse(codec: Codec, codes: SparseCodes, split: _Split, exact: bool = False) -> float:
        """Mean over samples and dimensions of the squared error, in float64: exact (the decoder's own
        reconstruction, a block of rows at a time) or through a sparse matmul (the search's)."""
        if not exact:
            return fast_sq_error(codec.decoder, codes.indptr, codes.indices, codec.quantiser.values(codes),
                                  split.x) / max(split.x.size, 1)
        total, rec = 0.0, codec.reconstruct(codes)
        for a in range(0, split.n, MSE_BLOCK):
            diff = rec[a:a + MSE_BLOCK].astype(np.float64) - split.x[a:a + MSE_BLOCK]
            total += float(np.einsum("ij,ij->", diff, diff))
        return total / max(rec.size, 1)

    def measure(self, codec: Codec, split: _Split, exact: bool = False) -> tuple[SparseCodes, float, float]:
        """(codes, MSE, bits per sample) of ``split``'s rows under ``codec``."""
        codes = codec.quantise(split.z)
        if codec.rdo_lambda is not None:
            codes = codec.optimise(split.x, codes)
        return codes, self.mse(codec, codes, split, exact), codec.chunk_coder.ideal_bits(codes)["total"] / split.n

    def trial(self, x: float, k_steps: float | None, k_rdo: float | None, warm: _Trial | None = None,
              tables: _Split | None = None, test: _Split | None = None, refit: bool = True,
              exact: bool = False) -> _Trial:
        """The codec at base step 2^x (the module's docstring), measured on ``test`` (default: the
        search's test rows), its tables counted on ``tables`` (default: the search's training rows;
        self.train_all for plain codes on the whole split). With RDO and ``refit``, the training rows
        are optimised under the warm tables and the tables refit on them; without, a nearby ``warm``
        trial's optimised training codes, moved to these steps, are counted as they are (no pass over
        the training rows: a cheap trial while the step converges)."""
        tables = self.train if tables is None else tables
        test = self.test if test is None else test
        steps = self.steps(2.0 ** x, k_steps)
        q = Quantiser(steps)
        lam, train_codes = None, None
        if k_rdo is None:
            model = _model(q.quantise_sparse(*tables.z), self.hierarchy)
        else:
            lam = k_rdo * natural_lambda(self.decoder, steps)
            # warm tables: a nearby trial's optimised codes moved to these steps (only counts: any rows
            # will do); from afar, the plain codes' (tables far from their fixed point pull the codes
            # into a sparser one of their own, too sparse for the tolerance)
            near = warm is not None and warm.train is not None and abs(warm.x - x) <= WARM_RANGE
            moved = _requantise(warm.train, warm.codec.quantiser.step, steps) if near else None
            if refit or moved is None:
                plain = q.quantise_sparse(*tables.z)
                start = _model(moved if moved is not None else plain, self.hierarchy)
                train_codes = optimise_codes(tables.x, plain, self.decoder, q, start, lam, self.device)
            else:
                train_codes = moved
            model = _model(train_codes, self.hierarchy)
        codec = Codec(self.decoder, q, model, self.encoder, lam, self.device)
        codes, mse, bits = self.measure(codec, test, exact)
        return _Trial(x, codec, codes, mse, bits, train_codes)

    def f(self, t: _Trial) -> float:
        """ln(MSE / target) of a trial on the search rows (-inf for no error at all)."""
        return math.log(t.mse / self.target) if t.mse > 0 else -math.inf

    def say(self, name: str, t: _Trial) -> None:
        self.progress(f"{name}: step {2.0 ** t.x:.5g} -> search MSE {t.mse:.6g} (target {self.target:.6g}), "
                      f"{t.bits:.2f} bits/sample")

    # -- the step search ----------------------------------------------------------------------
    def solve(self, k_steps, k_rdo, x0: float, warm: _Trial | None, slope: float,
              tried: list[_Trial] | None = None) -> tuple[_Trial, float, list[_Trial]]:
        """The trial of the largest base step found whose MSE on the search rows meets the target
        (safeguarded secant steps on f(x) = ln(MSE / target), x = log2 step, from x0; ``tried``: this
        variant's trials so far, continued), the slope df/dx last measured, and every trial made."""
        name = _variant_name(k_steps, k_rdo)
        aim = -MSE_SLACK / 2
        tried = list(tried or [])
        lo = max((t for t in tried if self.f(t) <= 0), key=lambda t: t.x, default=None)
        hi = min((t for t in tried if self.f(t) > 0), key=lambda t: t.x, default=None)
        prev = (tried[-1].x, self.f(tried[-1])) if tried else None
        x = x0
        for i in range(MAX_TRIALS + 32):
            if lo is not None and (self.f(lo) >= -MSE_SLACK or i >= MAX_TRIALS):
                break
            if hi is not None and lo is not None and hi.x - lo.x < 1e-4:
                break
            # the training rows are optimised at a variant's first trial and every third, else warm tables
            t = self.trial(x, k_steps, k_rdo, warm, refit=(len(tried) % 3 == 0))
            self.say(name, t)
            tried.append(t)
            warm, f = t, self.f(t)
            if f <= 0 and (lo is None or x > lo.x):
                lo = t
            if f > 0 and (hi is None or x < hi.x):
                hi = t
            if prev is not None and x != prev[0] and math.isfinite(f) and math.isfinite(prev[1]):
                s = (f - prev[1]) / (x - prev[0])
                if 0.1 < s < 10:
                    slope = s
            prev = (x, f)
            step = (aim - f) / slope if math.isfinite(f) else 1.0
            nxt = x + float(np.clip(step, -0.5, 0.5))
            if lo is not None and hi is not None:  # stay inside the bracket, off its ends
                lo_f, hi_f = self.f(lo), self.f(hi)
                frac = (aim - lo_f) / (hi_f - lo_f) if math.isfinite(lo_f) and hi_f > lo_f else 0.5
                if not (lo.x + 0.1 * (hi.x - lo.x) <= nxt <= hi.x - 0.1 * (hi.x - lo.x)):
                    nxt = lo.x + float(np.clip(frac, 0.1, 0.9)) * (hi.x - lo.x)
            x = nxt
        if lo is None:
            raise ModelError("no step met the tolerance with RDO or per-feature steps")  # pragma: no cover
        return lo, slope, tried

    def estimate(self, k_steps, k_rdo, x0: float, warm: _Trial | None, slope: float,
                 bits_slope: float | None) -> tuple[float, list[_Trial]]:
        """A variant's bits per sample at the target, from one trial near x0 (two if the first lands
        over ESTIMATE_RANGE from it): its bits moved along ``bits_slope`` (bits per unit of f, measured on
        a variant solved before; else between the two trials) to f = the aim. Returns (bits, trials)."""
        name = _variant_name(k_steps, k_rdo)
        aim = -MSE_SLACK / 2
        t = self.trial(x0, k_steps, k_rdo, warm, refit=True)
        self.say(name, t)
        tried = [t]
        f = self.f(t)
        if not math.isfinite(f) or abs(f - aim) > ESTIMATE_RANGE:
            x1 = x0 + (float(np.clip((aim - f) / slope, -0.5, 0.5)) if math.isfinite(f) else 0.5)
            t1 = self.trial(x1, k_steps, k_rdo, t, refit=False)
            self.say(name, t1)
            tried.append(t1)
            f1 = self.f(t1)
            if bits_slope is None and math.isfinite(f) and f1 != f:
                bits_slope = (t1.bits - t.bits) / (f1 - f)
            t, f = t1, f1
        if bits_slope is None or not math.isfinite(f):
            return t.bits if f <= 0 else math.inf, tried
        return t.bits + bits_slope * (aim - f), tried

    def finish(self, k_steps, k_rdo, t: _Trial, slope: float) -> _Trial:
        """The chosen variant's codec with its final tables, measured on the whole test split and its
        step shrunk (by the measured slope) until that meets max_mse."""
        name = _variant_name(k_steps, k_rdo)
        if not self.subsampled:
            return t
        tables = self.train_all if k_rdo is None else self.tables
        x, warm = t.x, t
        for i in range(MAX_FINAL + 1):
            final = self.trial(x, k_steps, k_rdo, warm, tables=tables, test=self.test_all, exact=True)
            self.progress(f"{name}: step {2.0 ** x:.5g} on all {self.test_all.n} test rows -> MSE {final.mse:.6g} "
                          f"(max {self.max_mse:.6g}), {final.bits:.2f} bits/sample")
            if final.mse <= self.max_mse:
                return final
            x -= (math.log(final.mse / self.max_mse) + MSE_SLACK / 2) / slope + 1e-4 * (i + 1)
            warm = final
        raise ModelError("no step met the tolerance on the whole test split")  # pragma: no cover


def _bits_slope(tried: list[_Trial], f) -> float | None:
    """d bits / d f by least squares over a variant's trials (None with fewer than two distinct f)."""
    pts = [(f(t), t.bits) for t in tried if math.isfinite(f(t))]
    if len(pts) < 2:
        return None
    fs, bs = np.array(pts).T
    if np.ptp(fs) < 1e-6:
        return None
    slope = float(np.polyfit(fs, bs, 1)[0])
    return slope if slope < 0 else None


def fit_rd_codec(sae, train_x: np.ndarray, test_x: np.ndarray, max_mse: float, device: str = "cpu",
                 hierarchy: str = "flat", per_feature: bool = True, rdo: bool = True,
                 kappas: tuple[float, ...] = RDO_KAPPAS, step_kappas: tuple[float, ...] = STEP_KAPPAS,
                 include_plain: bool = True,
                 configs: list[tuple[float | None, float | None]] | None = None, *,
                 latents: tuple[SparseLatents, SparseLatents] | None = None,
                 progress: Progress = quiet) -> tuple[Codec, dict]:
    """The codec with the shortest test cross-entropy meeting max_mse among: the plain one (one step,
    ``precision.coarsest_step``; left out of the choice, though reported, if not ``include_plain``), and
    per-feature steps (at each of ``step_kappas``), RDO (at each of ``kappas``) and, with both, the
    two together (RDO at kappa 1), as asked (the module's docstring); or exactly ``configs``, pairs
    (step kappa or None for one step, RDO kappa or None for plain encoding).
    hierarchy "flat" or "chowliu" ("auto" is flat for an SAE without a forest). ``latents``: the SAE's
    sparse latents of both splits, (z_train, z_test) as ``Codec.sae_sparse_encoder`` gives them, when
    the caller has them (the SAE does not run again); ``progress``: told a short line at each step.

    Returns (codec, report): report["variants"] lists each tried {per_feature, step_kappa, rdo, kappa,
    base_step, rdo_lambda, test_mse, bits_per_sample (test cross-entropy)}, measured on the search's
    rows (report["search_test_rows"] of report["test_rows"] test rows, tables counted on
    report["search_train_rows"] training rows; the whole splits when they are that small);
    report["chosen"] the winner's, measured on the whole test split with its final tables."""
    hierarchy = "flat" if hierarchy == "auto" else hierarchy
    s = _Search(as_sae(sae), train_x, test_x, max_mse, device, hierarchy, latents, progress)
    plain_step = fast_coarsest_step(s.decoder, s.test_all.z, s.test_all.x, max_mse)
    x_plain = math.log2(plain_step)
    # the plain codec: tables of the whole training split, as Codec.fit counts them, on the whole test split
    plain = s.trial(x_plain, None, None, tables=s.train_all, test=s.test_all, exact=True)
    progress(f"plain: step {plain_step:.5g}, {plain.bits:.2f} bits/sample, test MSE {plain.mse:.6g}")
    search_plain = plain
    if s.subsampled:
        search_plain = s.trial(x_plain, None, None)  # the same step on the search's rows, for comparison
        s.target = max_mse * search_plain.mse / plain.mse if plain.mse > 0 else max_mse
    variants = []

    def add(t: _Trial, k_steps, k, bits: float | None = None):
        codec = t.codec
        variants.append({"per_feature": k_steps is not None, "step_kappa": k_steps, "rdo": codec.rdo_lambda is not None,
                         "kappa": k, "base_step": float(np.exp(np.mean(np.log(codec.quantiser.step)))),
                         "rdo_lambda": codec.rdo_lambda, "test_mse": t.mse,
                         "bits_per_sample": t.bits if bits is None else bits, "estimated": bits is not None})

    add(search_plain, None, None)
    if configs is None:
        configs = [(k, None) for k in step_kappas] if per_feature else []
        configs += [(None, r) for r in kappas] if rdo else []
        configs += [(k, 1.0) for k in step_kappas] if per_feature and rdo else []
    # per variant: (bits at the target for the choice, its trials, the best trial meeting it or None)
    found: dict[tuple, tuple[float, list[_Trial], _Trial | None]] = {}
    slope = 2.0 * math.log(2.0)  # df/dx at high rate: MSE grows as step^2
    for k_steps, k_rdo in configs:
        if (k_steps, k_rdo) in found:
            continue
        # warm start: the last variant done with RDO and the same kind of steps, its step a guess;
        # per-feature steps with RDO start where RDO alone went, moved as per-feature steps moved plain's
        kin = [(c, v) for c, v in found.items() if c[1] is not None and (c[0] is None) == (k_steps is None)]
        solved_kin = [(c, v) for c, v in kin if v[2] is not None]
        pf = found.get((k_steps, None)) if k_steps is not None else None
        alone = found.get((None, k_rdo)) or next((v for c, v in reversed(list(found.items()))
                                                  if c[0] is None and c[1] is not None and v[2] is not None), None)
        progress(f"{_variant_name(k_steps, k_rdo)}: searching the step")
        if k_rdo is not None and solved_kin:
            (_, k_prev), (_, tr_prev, best_prev) = solved_kin[-1]
            x0 = best_prev.x + 0.15 * math.log2(k_rdo / k_prev)
            bits, tried = s.estimate(k_steps, k_rdo, x0, best_prev, slope, _bits_slope(tr_prev, s.f))
            found[(k_steps, k_rdo)] = (bits, tried, None)
            add(min(tried, key=lambda t: abs(s.f(t))), k_steps, k_rdo, bits)
            continue
        if k_rdo is None:
            x0, warm = x_plain, None
        elif k_steps is not None and pf is not None and pf[2] is not None and alone is not None:
            x0, warm = alone[2].x + (pf[2].x - x_plain), None
        else:
            x0, warm = x_plain + 0.2, None
        t, slope, tried = s.solve(k_steps, k_rdo, x0, warm, slope)
        found[(k_steps, k_rdo)] = (t.bits, tried, t)
        add(t, k_steps, k_rdo)
    if include_plain or not configs:
        found[(None, None)] = (search_plain.bits, [search_plain], search_plain)
    while True:  # the shortest; an estimate that wins is solved, and the choice made again
        (k_steps, k_rdo), (bits, tried, t) = min(found.items(), key=lambda item: item[1][0])
        if t is not None:
            break
        near = min(tried, key=lambda tr: abs(s.f(tr)))
        x0 = near.x + float(np.clip((-MSE_SLACK / 2 - s.f(near)) / slope, -0.5, 0.5))
        t, slope, tried = s.solve(k_steps, k_rdo, x0, tried[-1], slope, tried)
        progress(f"{_variant_name(k_steps, k_rdo)}: {t.bits:.2f} bits/sample at the target (estimated {bits:.2f})")
        found[(k_steps, k_rdo)] = (t.bits, tried, t)
        i = next(i for i, v in enumerate(variants) if (v["step_kappa"], v["kappa"]) == (k_steps, k_rdo))
        variants[i] = {**variants[i], "base_step": float(np.exp(np.mean(np.log(t.codec.quantiser.step)))),
                       "rdo_lambda": t.codec.rdo_lambda, "test_mse": t.mse, "bits_per_sample": t.bits,
                       "estimated": False}
    if k_steps is None and k_rdo is None:
        final = plain
    else:
        final = s.finish(k_steps, k_rdo, t, slope)
        if include_plain and plain.bits < final.bits:  # the whole split disagrees with the search rows
            progress(f"{_variant_name(k_steps, k_rdo)}: longer than plain on the whole test split; plain kept")
            final, k_steps, k_rdo = plain, None, None
    codec = final.codec
    chosen = {"per_feature": k_steps is not None, "step_kappa": k_steps, "rdo": codec.rdo_lambda is not None,
              "kappa": k_rdo, "base_step": float(np.exp(np.mean(np.log(codec.quantiser.step)))),
              "rdo_lambda": codec.rdo_lambda, "test_mse": final.mse, "bits_per_sample": final.bits}
    progress(f"kept {_variant_name(k_steps, k_rdo)}: {final.bits:.2f} bits/sample on the test split")
    report = {"variants": variants, "chosen": chosen, "test_rows": s.test_all.n, "search_test_rows": s.test.n,
              "train_rows": s.train_all.n, "search_train_rows": s.train.n,
              "table_train_rows": s.tables.n if codec.rdo_lambda is not None else s.train_all.n}
    return codec, report
