"""mdlcodec.selection.pipeline, a real sweep on toy data with a known dictionary size: the MDL
choice, and the cache (resume, wider grids, a second run)."""

from __future__ import annotations

import shutil

import pytest

from mdlcodec.selection import run_selection
from tests.selection.helpers import TRUE_WIDTH, WIDTHS, toy_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mdl_choice_is_the_true_dictionary_size(sweep):
    _, results, _ = sweep
    widths = sorted(WIDTHS)
    chosen = results["selected"]["width"]
    assert abs(widths.index(chosen) - widths.index(TRUE_WIDTH)) <= 1
    curve = {r["width"]: r for r in results["rows"] if r["calibrated"]}
    # narrower than the truth cannot meet the tolerance; the widest pays more than the choice
    assert curve[8]["k"] is None and curve[max(WIDTHS)]["file_bits"] > results["selected"]["file_bits"]


def test_a_second_run_trains_nothing_and_agrees(sweep, toy):
    run_dir, results, _ = sweep
    again, _ = run_selection(toy, toy_config(), run_dir)
    assert again["timing"]["sae_trained"] == 0 and again["timing"]["sae_reused"] == results["timing"]["sae_trained"]
    assert again["selected"] == results["selected"]
    assert [r.get("file_bits") for r in again["rows"]] == [r.get("file_bits") for r in results["rows"]]


def test_a_wider_grid_trains_only_the_new_width(sweep, toy, tmp_path):
    run_dir, results, _ = sweep
    shutil.copytree(run_dir / "cache", tmp_path / "cache")
    wider, _ = run_selection(toy, toy_config(widths=WIDTHS + (48,)), tmp_path)
    new = next(r for r in wider["rows"] if r["width"] == 48 and r["calibrated"])
    assert wider["timing"]["sae_trained"] == len(new["calibration"]["trials"])
    assert wider["timing"]["sae_reused"] == results["timing"]["sae_trained"]


class Interrupt(Exception):
    pass


def test_an_interrupted_sweep_resumes_where_it_stopped(sweep, toy, tmp_path):
    _, results, _ = sweep
    widths = (32, 64)  # as in the full grid: the narrower widths there meet no k, so nothing carries over
    expected = {t["hash"] for r in results["rows"] if r["calibrated"] and r["width"] in widths
                for t in r["calibration"]["trials"]}
    seen = []

    def stop_after_three(message: str) -> None:
        if message.lstrip().startswith("trained"):
            seen.append(message)
            if len(seen) == 3:
                raise Interrupt

    with pytest.raises(Interrupt):
        run_selection(toy, toy_config(widths=widths, pca=False), tmp_path, stop_after_three)
    assert len([p for p in (tmp_path / "cache").iterdir() if (p / "entry.json").exists()]) == 3
    resumed, _ = run_selection(toy, toy_config(widths=widths, pca=False), tmp_path)
    assert resumed["timing"]["sae_trained"] == len(expected) - 3
    assert {p.name for p in (tmp_path / "cache").iterdir()} == expected
    sel = {r["width"]: r["k"] for r in results["rows"] if r["calibrated"] and r["width"] in widths}
    assert {r["width"]: r["k"] for r in resumed["rows"] if r["calibrated"]} == sel


def test_objective_mdl_adds_a_candidate_per_width_and_names_the_winner(toy, tmp_path):
    from mdlcodec.selection.results import markdown_table
    results, _ = run_selection(toy, toy_config(widths=(TRUE_WIDTH,), objectives=("mse", "mdl"), pca=False), tmp_path)
    mdl = [r for r in results["rows"] if r["method"] == "sae-mdl"]
    assert len(mdl) == 1 and mdl[0]["width"] == TRUE_WIDTH and mdl[0]["arch"] == "jumprelu"
    measured = [r for r in results["rows"] if "file_bits" in r]
    o = results["objectives"]
    assert o["winner"] == min(("mse", "mdl"), key=lambda n: o[n]["file_bits"] if n in o else float("inf"))
    assert results["selected"]["file_bits"] == min(r["file_bits"] for r in measured)
    assert results["selected"]["objective"] == ("mdl" if o["winner"] == "mdl" else "mse")
    assert "objective mdl" in markdown_table(results)
    assert all(r["quantised_test_mse"] <= toy_config().tol for r in measured)


def test_description_length_is_the_shorter_valid_file():
    """With rdo a row's description length is best_file_bits (plain or optimised); the objectives
    compare it, so an optimised file can make the other objective win."""
    from mdlcodec.selection.pipeline import _objectives, file_bits

    plain = {"method": "sae", "width": 8, "k": 2, "l0": 2.0, "file_bits": 10.0, "payload_bits": 9.0, "hash": "a"}
    mdl = dict(plain, method="sae-mdl", k=None, file_bits=11.0, hash="b", best_file_bits=9.5,
               optimised={"file_bits": 9.5})
    assert file_bits(plain) == 10.0 and file_bits(mdl) == 9.5
    out = _objectives([plain, mdl])
    assert out["winner"] == "mdl" and out["mdl"]["file_bits"] == 9.5 and out["mse"]["file_bits"] == 10.0
