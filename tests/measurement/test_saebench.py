"""The drop-in for SAEBench's MDL eval (issue 20 §3): its call shape and JSON layout, with the
description lengths measured from real files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import mdlcodec
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.measurement.saebench import MDLEvalConfig, run_eval, saebench_estimate
from mdlcodec.models import load_sae

pytestmark = pytest.mark.usefixtures("one_thread")
SAEBENCH_FIELDS = {"num_bins", "k", "description_length", "within_threshold", "mse_loss"}


def test_run_eval_writes_saebench_json_with_measured_lengths(toy_model_dir, tmp_path):
    model, ds = toy_model_dir
    x = np.concatenate([ds.train, ds.test])
    cfg = MDLEvalConfig(activations=x, num_bins_values=[4, 16], k_values=[None, 1], max_fvu=0.8)
    out = run_eval(cfg, [("toy", load_sae(model)), ("folder", str(model))], "cpu", tmp_path / "mdl")
    files = sorted(p.name for p in (tmp_path / "mdl").iterdir())
    assert files == ["folder_model_eval_results.json", "toy_BatchTopKSAE_eval_results.json"]
    record = json.loads((tmp_path / "mdl" / "toy_BatchTopKSAE_eval_results.json").read_text())
    assert record["eval_type_id"] == "mdl" and record["sae_cfg_dict"]["d_sae"] == 24
    assert {"eval_instance_id", "eval_config", "eval_results", "eval_artifacts", "sae_lens_release", "sae_lens_id",
            "date_time"} <= set(record)
    rows = record["eval_results"]
    assert [(r["num_bins"], r["k"]) for r in rows] == [(4, None), (16, None), (None, None), (4, 1), (16, 1)]
    for r in rows:
        assert SAEBENCH_FIELDS <= set(r)
        assert r["description_length"] >= r["payload_bits"] >= 0.99 * r["cross_entropy_bits"]
        assert r["within_threshold"] == (r["mse_loss"] < record["eval_config"]["mse_epsilon_threshold"])
    eps = record["eval_config"]["mse_epsilon_threshold"]  # max_fvu 0.8 in SAEBench's units
    plain = mdlcodec.measure(load_sae(model), x, max_mse=(eps * ds.d) ** 2, pca=False, stored=False)
    tol_row = rows[2]
    assert tol_row["within_threshold"] and tol_row["description_length"] == pytest.approx(plain["rows"][0]["file_bits"])
    assert rows[3]["l0"] <= 1.0 and rows[0]["description_length"] < rows[1]["description_length"]
    assert out["toy_BatchTopKSAE"] == rows and out["custom_eval_config"]["max_fvu"] == 0.8
    again = run_eval(cfg, [("toy", load_sae(model))], "cpu", tmp_path / "mdl")  # present: skipped
    assert set(again) == {"custom_eval_config"}


def test_run_eval_refuses_hub_ids_and_missing_activations(toy_model_dir, tmp_path):
    model, ds = toy_model_dir
    with pytest.raises(MdlcodecError, match="activations is not set"):
        run_eval(MDLEvalConfig(), [("toy", load_sae(model))], "cpu", tmp_path)
    cfg = MDLEvalConfig(activations=np.concatenate([ds.train, ds.test]), k_values=[None], num_bins_values=[8])
    with pytest.raises(MdlcodecError, match="model hub"):
        run_eval(cfg, [("sae_bench_pythia70m_sweep", "blocks.4.hook_resid_post__trainer_10")], "cpu", tmp_path)


def test_saebench_estimate_is_its_formula():
    """Two features over 4 tokens: one active on 2 tokens in bins {1, 3}, one on all 4 in bin 2."""
    from mdlcodec.codec.sparse import SparseCodes

    codes = SparseCodes.from_rows(np.array([0, 0, 1, 2, 2, 3]), np.array([0, 1, 1, 0, 1, 1]),
                                  np.array([1, 2, 2, 3, 2, 2], np.int32), 4, 2)
    h = lambda p: -p * math.log2(p) - (1 - p) * math.log2(1 - p)  # noqa: E731
    assert saebench_estimate(codes, 8) == pytest.approx(h(0.5) + 0.5 * 1.0 + 0.0)
