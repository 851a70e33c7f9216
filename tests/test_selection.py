"""MDL selection (the paper's Appendix C): the calibration search, a small sweep on synthetic data
with a known dictionary size, the cache (resume, wider grids), results files and the CLI."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.data import load_dataset
from mdlcodec.models import TrainConfig
from mdlcodec.selection import SelectionConfig, run_selection, write_results
from mdlcodec.selection.plots import features_at_percentiles
from mdlcodec.selection.results import CSV_COLUMNS
from mdlcodec.selection.sweep import calibrate_width

# 32 true features in 24 dimensions, L0 6, all equally frequent: narrower SAEs cannot meet the
# tolerance, wider ones split features and pay for it.
TOY = "toy:n_features=32,d=24,l0=6,alpha=0,n=4000"
TRUE_WIDTH = 32
WIDTHS = (8, 16, 32, 64, 128)
TOL = 0.003


def toy_config(widths=WIDTHS, **kw) -> SelectionConfig:
    return SelectionConfig(tol=TOL, widths=widths, epochs=30, batch_size=64, **kw)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    return load_dataset(TOY)


@pytest.fixture(scope="module")
def sweep(toy, tmp_path_factory):
    """One full sweep on the toy data: (run_dir, results, extra)."""
    run_dir = tmp_path_factory.mktemp("sel") / "run"
    results, extra = run_selection(toy, toy_config(), run_dir)
    write_results(results, extra, run_dir, toy.image_shape)
    return run_dir, results, extra


# ------------------------------------------------------------------ the search, without training


class FakeCache:
    """Stands in for SAECache: test MSE is a known function of k; counts the 'trainings'."""

    def __init__(self, mse, d_in=1000, known=()):
        self.mse, self.train, self.calls = mse, np.zeros((1, d_in)), []
        self.known = {k: self._entry(k) for k in known}

    def _entry(self, k):
        return {"test": {"mse": self.mse(k)}, "hash": f"h{k}", "training": {"seconds": 0.0}}

    def known_ks(self, arch, d_in, d_sae, tcfg):
        return dict(self.known)

    def get_or_train(self, cfg, tcfg, progress):
        self.calls.append(cfg.k)
        return self._entry(cfg.k)


@pytest.mark.parametrize("scale,power,width,guess", [
    (0.06, 0.5, 256, None), (0.06, 0.5, 256, 3), (0.2, 1.0, 1024, 500), (0.016, 0.1, 64, 8),
    (0.05, 0.7, 4096, 40), (0.0151, 0.3, 128, None)])
def test_calibration_finds_the_smallest_passing_k_in_few_trainings(scale, power, width, guess):
    tol = 0.015
    mse = lambda k: scale * k ** -power  # noqa: E731
    truth = next((k for k in range(1, width + 1) if mse(k) <= tol), None)
    cache = FakeCache(mse)
    cal = calibrate_width(cache, width, tol, TrainConfig(), k_guess=guess)
    assert cal.k == truth and cal.converged
    assert len(cache.calls) == len(set(cache.calls)) <= 2 * math.log2(width) + 2
    assert (cal.k == 1 or cal.k - 1 in cal.trials) and not cal.trials.get((cal.k or 1) - 1, cal.chosen).passed


def test_calibration_says_when_no_k_meets_the_tolerance():
    cache = FakeCache(lambda k: 0.02 + 1 / k)
    cal = calibrate_width(cache, 48, 0.015, TrainConfig(), k_guess=4)
    assert cal.k is None and cal.chosen is None and cache.calls[-1] == 48  # k_max = width was tried


def test_calibration_starts_from_the_cache_and_stops_at_the_resolution():
    mse = lambda k: 0.1 / k  # noqa: E731  (passes from k = 7)
    cache = FakeCache(mse, known=(6, 7))
    assert calibrate_width(cache, 64, 0.015, TrainConfig()).k == 7 and cache.calls == []
    coarse = FakeCache(lambda k: 1.0 / k)  # passes from 67
    cal = calibrate_width(coarse, 512, 0.015, TrainConfig(), k_guess=10, k_resolution=0.1)
    lo = max(k for k, t in cal.trials.items() if not t.passed)
    assert 67 <= cal.k <= 67 * 1.12 and cal.k - lo <= 0.1 * cal.k
    assert len(coarse.calls) < len(set(range(10, 68)))


# ------------------------------------------------------------------ a real sweep on toy data


def test_mdl_choice_is_the_true_dictionary_size(sweep):
    _, results, _ = sweep
    widths = sorted(WIDTHS)
    chosen = results["selected"]["width"]
    assert abs(widths.index(chosen) - widths.index(TRUE_WIDTH)) <= 1
    curve = {r["width"]: r for r in results["rows"] if r["calibrated"]}
    # narrower than the truth cannot meet the tolerance; the widest pays more than the choice
    assert curve[8]["k"] is None and curve[max(WIDTHS)]["dl_measured"] > results["selected"]["dl_measured"]


def test_every_measured_sae_meets_tol_and_its_file_matches_theory(sweep):
    _, results, _ = sweep
    measured = [r for r in results["rows"] if r["k"] is not None]
    assert measured and results["checks"]["all_quantised_within_tol"]
    for r in measured:
        assert r["test_mse"] <= TOL and r["quantised_test_mse"] <= TOL
        assert abs(r["measured_over_theory"] - 1) < 0.01          # coded chunks vs cross-entropy
        assert r["dl_measured"] > r["payload_measured"] >= 0.99 * r["dl_theory"]["total"]
        assert math.isclose(r["dl_theory"]["total"], r["dl_theory"]["activity"] + r["dl_theory"]["values"])
        assert r["decoder_bits"] == 32 * (r["width"] * 24 + 24 + 1)
    pca = results["pca"]
    assert pca["quantised_test_mse"] <= TOL and pca["components"] <= 24


def test_results_files_hold_what_redoes_a_row(sweep):
    run_dir, results, _ = sweep
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["selected"] == results["selected"]
    assert {"mdlcodec", "torch", "numpy", "constriction"} <= set(saved["versions"])
    cfg, tcfg = saved["config"], saved["train_config"]
    assert cfg["tol"] == TOL and cfg["seed"] == 0 and tcfg["epochs"] == 30 and tcfg["lr"] > 0
    assert saved["data"]["spec"] == TOY and saved["data"]["fingerprint"]
    for r in saved["rows"]:
        if r["k"] is not None:
            entry = json.loads((run_dir / "cache" / r["hash"] / "entry.json").read_text())
            assert entry["key"]["sae"]["k"] == r["k"] and entry["key"]["train"]["seed"] == 0
            assert r["epochs_run"] >= 1
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["method"] for r in rows].count("pca") == 1
    assert sum(r["selected"] == "1" for r in rows) == 1
    sel = next(r for r in rows if r["selected"] == "1")
    assert int(sel["width"]) == results["selected"]["width"] and float(sel["dl_measured"]) > 0
    assert {int(r["width"]) for r in rows if r["method"] == "sae"} == set(WIDTHS)
    for name in ("fig2a_dl_vs_l0.png", "fig2b_alive_vs_l0.png", "results.md"):
        assert (run_dir / name).stat().st_size > 0
    assert not (run_dir / "fig2c_features.png").exists()  # toy data are not images


def test_a_second_run_trains_nothing_and_agrees(sweep, toy):
    run_dir, results, _ = sweep
    again, _ = run_selection(toy, toy_config(), run_dir)
    assert again["timing"]["sae_trained"] == 0 and again["timing"]["sae_reused"] == results["timing"]["sae_trained"]
    assert again["selected"] == results["selected"]
    assert [r.get("dl_measured") for r in again["rows"]] == [r.get("dl_measured") for r in results["rows"]]


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


def test_the_cache_key_ignores_device_but_not_training_settings(sweep, toy):
    from mdlcodec.models import SAEConfig
    from mdlcodec.selection.sweep import cache_key, data_fingerprint, key_hash

    fp = data_fingerprint(toy.train, toy.test)
    cfg = SAEConfig("batchtopk", 24, 32, k=6)
    base = key_hash(cache_key(fp, cfg, TrainConfig(epochs=30)))
    assert key_hash(cache_key(fp, cfg, TrainConfig(epochs=30, device="cuda", progress=True))) == base
    assert key_hash(cache_key(fp, cfg, TrainConfig(epochs=31))) != base
    assert key_hash(cache_key(fp, SAEConfig("batchtopk", 24, 32, k=7), TrainConfig(epochs=30))) != base
    assert data_fingerprint(toy.train[:-1], toy.test) != fp


def test_feature_picks_follow_density_percentiles():
    density = np.array([0.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.0])
    assert features_at_percentiles(density, (95, 50, 5), per_percentile=1) == [[1], [4], [7]]
    assert features_at_percentiles(density, (50,), per_percentile=3) == [[4, 3, 5]]
    assert features_at_percentiles(np.zeros(4)) == [[], [], [], [], []]


def test_feature_grid_for_image_data(sweep, tmp_path):
    from mdlcodec.selection.plots import plot_feature_grid

    _, _, extra = sweep
    h = next(iter(extra.decoders))
    w_dec = extra.decoders[h]
    images = np.concatenate([w_dec, np.zeros((len(w_dec), 1), np.float32)], axis=1)  # 24 + 1 = 5 x 5
    path = plot_feature_grid([("one", images, extra.densities[h])], (5, 5), tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ CLI


def _run(*args):
    return CliRunner().invoke(cli, ["select", *args])


@pytest.mark.parametrize("args,needle", [
    (["--widths", "32,abc"], "'abc' is not a positive integer"),
    (["--widths", "32,,64"], "is not a positive integer"),
    (["--widths", "0,8"], "'0' is not a positive integer"),
    (["--widths", "8,8"], "repeated"),
    (["--tol", "abc"], "is not a number"),
    (["--tol", "-0.1"], "positive"),
    (["--tol", "0"], "positive"),
    (["--tol", "nan"], "positive"),
])
def test_cli_bad_input_is_one_error_line(args, needle, tmp_path):
    r = _run(TOY, "-o", str(tmp_path / "run"), *args)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_unknown_data_is_one_error_line(tmp_path):
    r = _run("nosuchdata.xyz", "-o", str(tmp_path / "run"), "--widths", "8")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "nosuchdata" in r.output


def test_cli_runs_a_tiny_sweep(tmp_path):
    out = tmp_path / "run"
    args = ("toy:n_features=8,d=8,l0=1,alpha=0,n=1000", "--tol", "0.05", "--widths", "4,8,16", "--epochs", "10",
            "--batch-size", "32", "-o", str(out))
    r = _run(*args, "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "MDL choice: width" in r.output and "| PCA (dense) |" in r.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["command"].startswith("mdlcodec select toy:") and "--widths 4,8,16" in saved["command"]
    assert (out / "results.csv").exists() and (out / "fig2a_dl_vs_l0.png").exists()
    again = _run(*args, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["timing"]["sae_trained"] == 0
