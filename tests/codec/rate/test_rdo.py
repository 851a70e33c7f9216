"""Rate-distortion optimised encoding (codec/rate/rdo.py) and the per-feature / RDO fit (codec/rate/rd_fit.py), on
synthetic data with a known dictionary: a TopK SAE whose tied unit-norm dictionary generated the data
(x = sparse codes @ W_dec + noise)."""

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec
from mdlcodec.codec.files import payload_bits
from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.codec.rate.rd_fit import fit_rd_codec
from mdlcodec.codec.rate.rdo import CostTables, natural_lambda, optimise_codes
from mdlcodec.codec.rate.steps import STEP_GRID, allocate_steps
from mdlcodec.codec.tables_file import read_rdo
from tests.codec.helpers import codes_mse, known_dictionary

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def synthetic():
    return known_dictionary(0, 1500, 600)


def _plain(sae, train, step):
    return Codec.fit(sae, train, step, hierarchy="flat")


@pytest.mark.parametrize("kappa", [0.3, 1.0, 4.0])
def test_rdo_never_raises_the_objective(synthetic, kappa):
    """J = coded bits + lam * squared error of the RDO codes is at most the plain codes', per sample
    (the search's flat bit estimate) and in total under the real coder's ideal bits."""
    sae, train, test, _ = synthetic
    codec = _plain(sae, train, 0.2)
    lam = kappa * natural_lambda(codec.decoder, 0.2)
    plain = codec.latents(test)
    rdo = codec.with_rdo(lam).latents(test)
    assert rdo != plain

    def J(codes):
        se = ((codec.reconstruct(codes).astype(np.float64) - test) ** 2).sum()
        return codec.chunk_coder.ideal_bits(codes)["total"] + lam * se
    assert J(rdo) < J(plain)
    # per sample, with the search's own estimate of bits
    costs = CostTables(codec.entropy_model)

    def per_sample(codes):
        bits = costs.bits(torch.tensor(codes.to_dense(), dtype=torch.int64)).sum(1).numpy()
        return bits + lam * ((codec.reconstruct(codes).astype(np.float64) - test) ** 2).sum(1)
    assert np.all(per_sample(rdo) <= per_sample(plain) + 1e-3)


def test_rdo_file_never_longer_at_the_tolerance(synthetic):
    """At a tolerance, the fitted RDO codec's real file is shorter than the plain codec's (the
    coarsest single step meeting it), both within it; the chosen codec is never the longer one."""
    sae, train, test, tol = synthetic
    codec, report = fit_rd_codec(sae, train, test, tol, per_feature=False, kappas=(1.0,))
    plain = report["variants"][0]
    assert not plain["rdo"] and plain["test_mse"] <= tol
    rdo = report["variants"][1]
    assert rdo["rdo"] and rdo["test_mse"] <= tol
    assert codec.rdo_lambda is not None  # RDO won here
    plain_codec, _ = fit_codec(sae, train, test, max_mse=tol, hierarchy="flat")
    data_rdo, data_plain = codec.encode(test), plain_codec.encode(test)
    assert payload_bits(data_rdo) < payload_bits(data_plain)
    assert codes_mse(codec, codec.decode_latents(data_rdo), test) <= tol
    assert codes_mse(plain_codec, plain_codec.decode_latents(data_plain), test) <= tol


def test_rdo_files_decode_exactly_and_match_the_entropy_estimate(synthetic, tmp_path):
    """An RDO file decodes to exactly the codes encoded (also by a codec that knows nothing of RDO:
    the same tables, the old decoder), and its payload is within 0.1% of their cross-entropy."""
    sae, train, test, _ = synthetic
    base = _plain(sae, train, 0.25)
    codec = base.with_rdo(natural_lambda(base.decoder, 0.25))
    codes = codec.latents(test)
    data = codec.encode(test)
    assert codec.decode_latents(data) == codes
    old = Codec(base.decoder, base.quantiser, base.entropy_model)  # decode-only, no encoder, no RDO
    assert old.decode_latents(data) == codes
    assert np.array_equal(old.decode(data), codec.reconstruct(codes))
    # within 0.1% of the cross-entropy, on enough samples that the coder's last words are a small share
    big = np.concatenate([test] * 8)
    big_codes = codec.latents(big, 4096)
    ideal = codec.chunk_coder.ideal_bits(big_codes)["total"]
    assert abs(payload_bits(codec.encode(big)) - ideal) <= 1e-3 * ideal, (payload_bits(codec.encode(big)), ideal)
    # the setting is kept with the tables, outside their arrays and fingerprint
    codec._write_tables(tmp_path / "t.safetensors")
    assert read_rdo(tmp_path / "t.safetensors") == pytest.approx(codec.rdo_lambda)
    base._write_tables(tmp_path / "p.safetensors")
    assert read_rdo(tmp_path / "p.safetensors") is None
    assert codec.entropy_fingerprint == base.entropy_fingerprint


def test_rdo_drops_latents_at_small_lambda_and_refits_at_large(synthetic):
    """lam -> 0 empties every code (bits only); a large lam gives a lower MSE than plain rounding
    (least-squares refit and bin moves) at the same step."""
    sae, train, test, _ = synthetic
    codec = _plain(sae, train, 0.3)
    plain = codec.latents(test)
    empty = optimise_codes(test, plain, codec.decoder, codec.quantiser, codec.entropy_model, 1e-9)
    assert empty.nnz == 0
    sharp = optimise_codes(test, plain, codec.decoder, codec.quantiser, codec.entropy_model, 1e6)
    assert codes_mse(codec, sharp, test) < 0.9 * codes_mse(codec, plain, test)


def test_per_feature_steps_come_from_the_grid_and_meet_the_tolerance(synthetic):
    sae, train, test, tol = synthetic
    enc = Codec.sae_sparse_encoder(sae)
    steps = allocate_steps(Codec.fit(sae, train, 0.2).decoder, enc(train), 0.2)
    assert steps.shape == (48,)
    assert np.all(np.isin(np.round(steps / np.float32(0.2), 4), np.round(STEP_GRID.astype(np.float32), 4)))
    _, report = fit_rd_codec(sae, train, test, tol, rdo=False)
    pf = report["variants"][1]
    assert pf["per_feature"] and pf["test_mse"] <= tol
    assert report["chosen"]["bits_per_sample"] == min(v["bits_per_sample"] for v in report["variants"])


def test_rdo_without_the_dense_cost_table_gives_the_same_codes(synthetic, monkeypatch):
    """Wide SAEs with wide value tables skip the dense [d_sae, 2B + 3] cost table; the per-feature
    lookup they use instead gives the same costs, hence the same codes (it once failed on shapes)."""
    sae, train, test, _ = synthetic
    codec = _plain(sae, train, 0.2).with_rdo(natural_lambda(_plain(sae, train, 0.2).decoder, 0.2))
    dense = codec.latents(test)
    monkeypatch.setattr(CostTables, "DENSE_LIMIT", 0)
    assert CostTables(codec.entropy_model).dense is None
    assert codec.latents(test) == dense
