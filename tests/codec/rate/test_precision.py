"""mdlcodec.codec.rate.precision, the step search: on a small hand-built decoder and synthetic latents (no
MNIST), the step meets the MSE bound, a slightly coarser one does not, the step grows with the
bound, the default adds 1% to the unquantised MSE, and a bound below the unquantised MSE is refused;
then the same on an SAE trained on MNIST."""

import numpy as np
import pytest

from mdlcodec.codec import Codec, Decoder, Quantiser
from mdlcodec.codec.rate.precision import coarsest_step, default_step, quantised_mse
from mdlcodec.core.errors import MdlcodecError

FACTORS = [1.5, 2.0, 5.0, 20.0, 100.0]
"""Bounds, as multiples of the unquantised MSE, where quantisation error dominates the MSE: there it
grows with the step (at tighter bounds float32 rounding makes it jitter, and a step 5% coarser than
the boundary the bisection finds can meet the bound again)."""


@pytest.fixture(scope="module")
def synthetic():
    """(decoder, z, x, base): a random unit-norm dictionary (d_sae 48, d_in 12, input_scale 1.5),
    sparse non-negative latents z [2000, 48] (8% active, values in [0.1, 3]), x their reconstruction
    plus noise, and base the unquantised MSE."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(48, 12)).astype(np.float32)
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    decoder = Decoder(W, (0.1 * rng.normal(size=12)).astype(np.float32), 1.5)
    z = np.where(rng.random((2000, 48)) < 0.08, rng.uniform(0.1, 3.0, (2000, 48)), 0).astype(np.float32)
    x = (decoder.reconstruct(z) + 0.02 * rng.normal(size=(2000, 12))).astype(np.float32)
    base = float(np.mean((decoder.reconstruct(z).astype(np.float64) - x) ** 2))
    return decoder, z, x, base


def _mse_by_hand(decoder, z, x, step):
    """The quantised MSE computed without precision.py: quantise, dequantise, decode."""
    q = Quantiser.uniform(step, z.shape[1])
    x_hat = decoder.reconstruct(q.dequantise(q.quantise(z)))
    return float(np.mean((x_hat.astype(np.float64) - x.astype(np.float64)) ** 2))


@pytest.mark.parametrize("step", [1e-4, 0.01, 0.1, 0.7, 2.5, 100.0])
def test_quantised_mse_is_the_mse_of_the_dequantised_latents(synthetic, step):
    decoder, z, x, base = synthetic
    assert quantised_mse(decoder, z, x, step) == pytest.approx(_mse_by_hand(decoder, z, x, step), rel=1e-9)
    assert quantised_mse(decoder, z, x, 1e-4) == pytest.approx(base, rel=1e-3)  # fine: the SAE's own MSE


@pytest.mark.parametrize("factor", FACTORS)
def test_the_step_meets_the_bound_and_a_coarser_one_does_not(synthetic, factor):
    decoder, z, x, base = synthetic
    bound = base * factor
    step = coarsest_step(decoder, z, x, bound)
    assert 0 < step < 2 * z.max()  # not the all-coarse top: these bounds need some latents
    assert _mse_by_hand(decoder, z, x, step) <= bound
    assert _mse_by_hand(decoder, z, x, step * 1.05) > bound


def test_the_step_grows_with_the_bound(synthetic):
    decoder, z, x, base = synthetic
    steps = [coarsest_step(decoder, z, x, base * f) for f in FACTORS]
    assert all(a < b for a, b in zip(steps, steps[1:])), steps


def test_a_bound_that_zero_latents_meet_gives_the_all_coarse_step(synthetic):
    """Where even dropping every latent meets the bound, the step is the top of the search: coarser
    than every latent, so that all of them round to bin 0."""
    decoder, z, x, _ = synthetic
    all_zero = _mse_by_hand(decoder, z, x, 1e6)
    step = coarsest_step(decoder, z, x, all_zero * 1.01)
    assert step >= 2 * z.max() and Quantiser.uniform(step, z.shape[1]).quantise(z).nnz == 0
    assert coarsest_step(decoder, z, x, all_zero * 0.99) < 2 * z.max()  # just below it: some latents stay


def test_default_step_adds_one_percent_to_the_unquantised_mse(synthetic):
    decoder, z, x, base = synthetic
    step = default_step(decoder, z, x)
    assert step == coarsest_step(decoder, z, x, base * 1.01)
    assert base < _mse_by_hand(decoder, z, x, step) <= base * 1.01
    looser = default_step(decoder, z, x, relative=1.0)
    assert looser == coarsest_step(decoder, z, x, base * 2.0) and looser > step


@pytest.mark.parametrize("factor", [0.0, 0.5, 0.999])
def test_a_bound_below_the_unquantised_mse_is_refused(synthetic, factor):
    decoder, z, x, base = synthetic
    with pytest.raises((ValueError, MdlcodecError)):
        coarsest_step(decoder, z, x, base * factor)


# --- on a trained SAE (MNIST; skipped where it is absent)

def test_coarsest_step_meets_the_bound_and_is_coarsest(mnist_sae):
    ds, sae = mnist_sae
    decoder = Decoder.from_sae(sae)
    z = Codec.sae_encoder(sae)(ds.test)
    base = float(np.mean((decoder.reconstruct(z) - ds.test) ** 2))
    tol = base * 1.2
    step = coarsest_step(decoder, z, ds.test, tol)
    q = Quantiser.uniform(step, z.shape[1])
    assert np.mean((decoder.reconstruct(q.dequantise(q.quantise(z))) - ds.test) ** 2) <= tol
    q2 = Quantiser.uniform(step * 1.5, z.shape[1])
    assert np.mean((decoder.reconstruct(q2.dequantise(q2.quantise(z))) - ds.test) ** 2) > tol
