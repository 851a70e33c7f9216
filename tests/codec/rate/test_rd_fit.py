"""The search of codec/rate/rd_fit.py (fit_rd_codec): its subsampled search, warm starts and estimates
still meet the tolerance on the whole test split; the files its codec writes decode exactly, their
payload within 0.1% of the cross-entropy; it reports progress and takes latents already computed."""

import numpy as np
import pytest

import mdlcodec.codec.rate.rd_fit as rd_fit
from mdlcodec.codec import Codec
from mdlcodec.codec.files import payload_bits
from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.codec.rate.rd_fit import _requantise, fit_rd_codec
from mdlcodec.codec.sparse import SparseCodes
from tests.codec.helpers import codes_mse, known_dictionary

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synthetic():
    return known_dictionary(1, 2000, 1200)


@pytest.fixture
def small_search(monkeypatch):
    """Subsamples smaller than the splits: the search runs on some rows, the kept codec on all."""
    monkeypatch.setattr(rd_fit, "SEARCH_TRAIN_ROWS", 600)
    monkeypatch.setattr(rd_fit, "SEARCH_TEST_ROWS", 400)
    monkeypatch.setattr(rd_fit, "TABLE_TRAIN_ROWS", 1000)


def test_subsampled_search_meets_the_tolerance_on_the_whole_test_split(synthetic, small_search):
    sae, train, test, tol = synthetic
    lines = []
    codec, report = fit_rd_codec(sae, train, test, tol, per_feature=False, kappas=(1.0, 1.4), progress=lines.append)
    assert report["search_test_rows"] == 400 and report["test_rows"] == len(test)
    assert report["search_train_rows"] == 600 and report["table_train_rows"] in (1000, len(train))
    chosen = report["chosen"]
    assert codec.rdo_lambda is not None and chosen["rdo"]  # RDO wins on this data
    codes = codec.latents(test)
    assert codes_mse(codec, codes, test) <= tol * (1 + 1e-9)
    assert chosen["test_mse"] == pytest.approx(codes_mse(codec, codes, test), rel=1e-4)
    assert chosen["bits_per_sample"] == pytest.approx(codec.chunk_coder.ideal_bits(codes)["total"] / len(test), rel=1e-3)
    plain, _ = fit_codec(sae, train, test, max_mse=tol, hierarchy="flat")
    assert payload_bits(codec.encode(test)) < payload_bits(plain.encode(test))
    # progress: short lines naming the variants and steps as they are tried
    assert any("RDO (kappa 1)" in line and "step" in line for line in lines)
    assert any(line.startswith("kept") for line in lines)
    assert all("\n" not in line and len(line) < 200 for line in lines)


def test_rdo_files_decode_exactly_within_a_thousandth_of_the_cross_entropy(mnist_sae, monkeypatch, tmp_path):
    """What fit_rd_codec keeps (searched on subsamples of MNIST's splits) writes files whose latents
    decode exactly (with the model folder's tables, and by a decoder that knows nothing of RDO), the
    payload within 0.1% of their cross-entropy, the test MSE within the tolerance."""
    from mdlcodec.models import save_sae

    monkeypatch.setattr(rd_fit, "SEARCH_TRAIN_ROWS", 2000)
    monkeypatch.setattr(rd_fit, "SEARCH_TEST_ROWS", 800)
    monkeypatch.setattr(rd_fit, "TABLE_TRAIN_ROWS", 3000)
    ds, sae = mnist_sae
    tol = 0.02
    codec, report = fit_rd_codec(sae, ds.train, ds.test, tol, per_feature=False, kappas=(1.4,))
    assert codec.rdo_lambda is not None and report["search_test_rows"] == 800
    codes = codec.latents(ds.test, 4096)
    assert codes_mse(codec, codes, ds.test) <= tol * (1 + 1e-9)
    data = codec.encode(ds.test, 4096)
    assert codec.decode_latents(data) == codes
    old = Codec(codec.decoder, codec.quantiser, codec.entropy_model)  # decode only: no encoder, no RDO
    assert old.decode_latents(data) == codes
    ideal = codec.chunk_coder.ideal_bits(codes)["total"]
    assert abs(payload_bits(data) - ideal) <= 1e-3 * ideal, (payload_bits(data), ideal)
    model = tmp_path / "m"
    save_sae(sae, model)
    codec.save_tables(model)
    loaded = Codec.load(model)
    assert loaded.rdo_lambda == pytest.approx(codec.rdo_lambda)
    assert loaded.decode_latents(data) == codes


def test_latents_given_are_used_and_the_sae_does_not_run(synthetic, monkeypatch):
    sae, train, test, tol = synthetic
    enc = Codec.sae_sparse_encoder(sae)
    z = (enc(train), enc(test))
    ref, ref_report = fit_rd_codec(sae, train, test, tol, per_feature=False, kappas=(1.0,))

    def refuse(*a, **k):
        raise AssertionError("the SAE ran although its latents were given")
    monkeypatch.setattr(type(sae), "encode_sparse", refuse)
    codec, report = fit_rd_codec(sae, train, test, tol, per_feature=False, kappas=(1.0,), latents=z)
    assert np.array_equal(codec.quantiser.step, ref.quantiser.step)
    assert codec.rdo_lambda == pytest.approx(ref.rdo_lambda)
    assert report["chosen"]["bits_per_sample"] == pytest.approx(ref_report["chosen"]["bits_per_sample"], rel=1e-6)
    with pytest.raises(Exception, match="latents"):
        fit_rd_codec(sae, train, test, tol, rdo=False, latents=(z[0], enc(test[:10])))


def test_per_feature_and_both_variants_are_reported_and_the_shortest_kept(synthetic):
    sae, train, test, tol = synthetic
    _, report = fit_rd_codec(sae, train, test, tol)
    kinds = {(v["per_feature"], v["rdo"]) for v in report["variants"]}
    assert kinds == {(False, False), (True, False), (False, True), (True, True)}
    measured = [v for v in report["variants"] if not v["estimated"]]
    assert all(v["test_mse"] <= tol * (1 + 1e-9) for v in measured)
    # splits smaller than the subsamples: the chosen figures are its search figures, the shortest measured
    assert report["chosen"]["bits_per_sample"] == pytest.approx(min(v["bits_per_sample"] for v in measured))
    assert report["chosen"]["bits_per_sample"] <= report["variants"][0]["bits_per_sample"]


def test_requantise_moves_codes_to_other_steps():
    codes = SparseCodes.from_dense(np.array([[4, 0, -2], [1, 3, 0]]))
    moved = _requantise(codes, np.array([1.0, 1.0, 1.0], np.float32), np.array([2.0, 4.0, 1.0], np.float32))
    assert np.array_equal(moved.to_dense(), [[2, 0, -2], [0, 1, 0]])  # rint: 0.5 -> 0, 0.75 -> 1
