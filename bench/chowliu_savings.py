"""Bits that Chow-Liu coding of feature activity saves, measured from real .mdlc files.

    python bench/chowliu_savings.py --lm-width 1024 4096 --lm-spec toy:lm toy:lm,hierarchy=1024
    python bench/chowliu_savings.py [--lm-width 1024] [--skip-mnist] ... [-o OUT.json]

The committed bench/results/chowliu_savings.json records the full set (the first command,
``FULL_ARGS``); only that set is written there, the default output of a full run. Any other run
(fewer SAEs, other settings) writes runs/chowliu_savings/results.json, or -o, and refuses -o of
the committed file, so a partial result never replaces it.

For each SAE the codec is fit once with a Chow-Liu forest (``fit_codec(..., hierarchy="chowliu")``:
the forest and its counts are learned on the training split) and the same tables without the forest
are the flat code (``Codec.with_hierarchy(None)``). Both encode the test split with ``Codec.encode``;
bits per sample are read from the files (payload: the ANS words; file: every byte), and both files
are decoded back and checked against the quantised latents. Reported per SAE: flat and Chow-Liu
test bits/sample, the saving (bits/sample and %), the forest's table bits (``codec.hierarchy_bits()``,
the part of the two-part code the forest adds, also spread over the test samples), its edges and
depth, and encode/decode seconds of both (best of --repeats; encode: activations to file bytes, SAE
included; decode: file bytes to latents).

SAEs:
- MNIST (8,000 train / 2,000 test, ``load_dataset("mnist")``, folder $MDLCODEC_MNIST, default
  ../shared/data/mnist from the repository root): the MDL choice and the widest SAE of the selection
  run in docs/results/select (results.json names them; their weights are in its cache/ folder). If
  a model is not cached it is trained now with the run's own training settings (and the report says
  so). Step: the coarsest whose quantised test MSE is <= 0.015 (the paper's tolerance), as the
  selection run chose it.
- toy:lm (synthetic LM-like activations: d 768, 4,096 true features, L0 64): BatchTopK SAEs of
  width --lm-width (one or more) and k 64, trained briefly (--lm-epochs) unless --lm-model names a saved one; it
  is kept in --lm-cache and reused. Step: the codec's default (quantisation adds 1% to the SAE's own
  test MSE). toy:lm draws its features independently, so its SAEs' latents share little mutual
  information; --lm-spec adds sets with planted structure (toy:lm,hierarchy=H: H children that fire
  only with their parents) to show what the forest saves when the data has it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SELECT_DIR = ROOT / "docs" / "results" / "select"
MNIST_MAX_MSE = 0.015
COMMITTED = ROOT / "bench" / "results" / "chowliu_savings.json"
FULL_ARGS = ["--lm-width", "1024", "4096", "--lm-spec", "toy:lm", "toy:lm,hierarchy=1024"]
"""The set of SAEs the committed results file records (its "command")."""
PARTIAL_OUTPUT = ROOT / "runs" / "chowliu_savings" / "results.json"


def best_time(fn, repeats: int):
    """(fastest wall seconds of ``repeats`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure_file(codec, test_x: np.ndarray, codes, repeats: int) -> dict:
    """Encode test_x with ``codec`` into a file (format version 3), read its payload, decode it back
    (timed); the same in format version 2 (``*_v2``), to compare the two versions on the same codes."""
    from mdlcodec.codec.format.container import Reader

    out = {}
    for v, tag in ((3, ""), (2, "_v2")):
        enc_s, data = best_time(lambda: codec.encode(test_x, version=v), repeats)
        dec_s, decoded = best_time(lambda: codec.decode_latents(data), repeats)
        n = len(test_x)
        payload = sum(32 * len(words) for _, words in Reader.open(io.BytesIO(data)).chunks())
        out.update({f"file_bytes{tag}": len(data), f"file_bits_per_sample{tag}": 8 * len(data) / n,
                    f"payload_bits_per_sample{tag}": payload / n,
                    f"cross_entropy_bits_per_sample{tag}": codec.coder(v).ideal_bits(codes)["total"] / n,
                    f"encode_s{tag}": enc_s, f"decode_s{tag}": dec_s, f"decoded_exactly{tag}": bool(decoded == codes)})
    out["payload_v3_over_v2_percent"] = 100 * (out["payload_bits_per_sample"] / out["payload_bits_per_sample_v2"] - 1)
    return out


def chowliu_savings(label: str, sae, train_x: np.ndarray, test_x: np.ndarray, max_mse: float | None,
                    repeats: int, source: dict) -> dict:
    """Fit the Chow-Liu codec, derive the flat one from the same tables, and measure both."""
    from mdlcodec.codec.rate.precision import fit_codec
    from mdlcodec.core.forest import forest_depths

    t = time.perf_counter()
    codec, report = fit_codec(sae, train_x, test_x, max_mse=max_mse, hierarchy="chowliu")
    fit_s = time.perf_counter() - t
    flat = codec.with_hierarchy(None)
    codes = codec.latents(test_x)
    n = len(test_x)
    m_flat = measure_file(flat, test_x, codes, repeats)
    m_cl = measure_file(codec, test_x, codes, repeats)
    forest = codec.entropy_model.hierarchy
    saving = m_flat["payload_bits_per_sample"] - m_cl["payload_bits_per_sample"]
    table_bits = codec.hierarchy_bits()
    return {
        "label": label, **source, "d_sae": codec.decoder.d_sae, "n_train": len(train_x), "n_test": n,
        "step": report["step"], "quantised_test_mse": report["quantised_test_mse"],
        "quantised_l0": report["quantised_l0"],
        "quantised_test_fvu": report["quantised_test_mse"] / float(np.mean(np.var(test_x.astype(np.float64), axis=0)) or 1),
        "fit_codec_s": fit_s,
        "flat": m_flat, "chowliu": m_cl,
        "saving_bits_per_sample": saving,
        "saving_percent": 100 * saving / m_flat["payload_bits_per_sample"],
        "file_saving_bits_per_sample": m_flat["file_bits_per_sample"] - m_cl["file_bits_per_sample"],
        "cross_entropy_saving_bits_per_sample": m_flat["cross_entropy_bits_per_sample"] - m_cl["cross_entropy_bits_per_sample"],
        "chowliu_table_bits": table_bits,
        "net_saving_bits_per_sample": saving - table_bits / n,
        "edges": forest.n_edges, "depth": int(forest_depths(forest.parents).max(initial=0)),
    }


# ------------------------------------------------------------------------------------- SAEs


def _train_config(select: dict):
    from mdlcodec.models import TrainConfig

    tc = dict(select.get("train_config", {}))
    fields = TrainConfig.__dataclass_fields__
    tc = {k: v for k, v in tc.items() if k in fields}
    tc.update(device="cpu", progress=False)
    return TrainConfig(**tc)


def mnist_models(select: dict) -> list[tuple[str, dict]]:
    """[(label, results.json row)] for the MDL choice and the widest SAE (the curve's row, i.e. the
    calibrated one, at the largest width; ties: the lowest DL)."""
    rows = [r for r in select["rows"] if r.get("method") == "sae" and r.get("hash")]
    chosen = next(r for r in rows if r["hash"] == select["selected"]["hash"])
    widest = max(r["width"] for r in rows)
    wide = [r for r in rows if r["width"] == widest]
    wide = [r for r in wide if r.get("calibrated")] or wide
    wide.sort(key=lambda r: r["file_bits"])
    return [("MNIST MDL choice", chosen), ("MNIST widest", wide[0])]


def load_or_train_mnist(row: dict, select: dict, ds) -> tuple[object, dict]:
    from mdlcodec.models import SAEConfig, load_sae, train_sae
    from mdlcodec.models.io import model_files

    folder = SELECT_DIR / "cache" / row["hash"]
    if model_files(folder)[1].exists():
        sae = load_sae(folder)
        return sae, {"model": str(folder.relative_to(ROOT)), "trained_now": False, "width": row["width"],
                     "k": row["k"], "selection_step": row.get("step")}
    cfg = SAEConfig(arch=select["config"].get("arch", "batchtopk"), d_in=ds.d, d_sae=row["width"], k=row["k"])
    print(f"  {folder} is not cached: training {cfg.arch} width {cfg.d_sae} k {cfg.k} now...", file=sys.stderr)
    t = time.perf_counter()
    sae, _ = train_sae(cfg, ds.train, None, _train_config(select))
    return sae.cpu(), {"model": "trained now (not in the selection cache)", "trained_now": True,
                       "train_s": time.perf_counter() - t, "width": row["width"], "k": row["k"],
                       "selection_step": row.get("step")}


def load_or_train_lm(ds, width: int, k: int, epochs: int, model: Path | None, cache: Path) -> tuple[object, dict]:
    from mdlcodec.models import SAEConfig, TrainConfig, load_sae, save_sae, train_sae
    from mdlcodec.models.io import model_files

    for folder in (model, cache):
        if folder is not None and model_files(folder)[1].exists():
            sae = load_sae(folder)
            return sae, {"model": str(folder), "trained_now": False, "width": sae.cfg.d_sae, "k": sae.cfg.k}
    if model is not None:
        raise SystemExit(f"error: {model} holds no SAE")
    cfg = SAEConfig(arch="batchtopk", d_in=ds.d, d_sae=width, k=k)
    print(f"  training batchtopk width {width} k {k} on {ds.name}, {epochs} epochs...", file=sys.stderr)
    t = time.perf_counter()
    sae, res = train_sae(cfg, ds.train, None, TrainConfig(epochs=epochs, seed=0, progress=False))
    sae = sae.cpu()
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_sae(sae, cache)
    return sae, {"model": f"trained now ({len(res.history)} epochs), saved in {cache}", "trained_now": True,
                 "train_s": time.perf_counter() - t, "width": width, "k": k}


# ------------------------------------------------------------------------------------- output


def markdown(rows: list[dict]) -> str:
    lines = ["| SAE | width | k | L0 | test MSE | step | flat bits/sample | Chow-Liu bits/sample | saving | saving % "
             "| tables (bits) | net saving/sample | edges | depth | encode s flat / CL | decode s flat / CL "
             "| v3 vs v2 payload flat / CL | v2 encode s flat / CL | v2 decode s flat / CL |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        f, c = r["flat"], r["chowliu"]
        lines.append(f"| {r['label']} | {r['width']} | {r['k']} | {r['quantised_l0']:.2f} | {r['quantised_test_mse']:.4g} | {r['step']:.4g} "
                     f"| {f['payload_bits_per_sample']:.2f} | {c['payload_bits_per_sample']:.2f} "
                     f"| {r['saving_bits_per_sample']:.2f} | {r['saving_percent']:.2f}% | {r['chowliu_table_bits']:,.0f} "
                     f"| {r['net_saving_bits_per_sample']:.2f} | {r['edges']} | {r['depth']} "
                     f"| {f['encode_s']:.3f} / {c['encode_s']:.3f} | {f['decode_s']:.3f} / {c['decode_s']:.3f} "
                     f"| {f['payload_v3_over_v2_percent']:+.2f}% / {c['payload_v3_over_v2_percent']:+.2f}% "
                     f"| {f['encode_s_v2']:.3f} / {c['encode_s_v2']:.3f} | {f['decode_s_v2']:.3f} / {c['decode_s_v2']:.3f} |")
    return "\n".join(lines) + "\n"


def _measured_set(args: argparse.Namespace) -> tuple:
    """What decides which SAEs are measured, and how (not where the output goes or the timing repeats)."""
    return (args.skip_mnist, args.skip_lm, sorted(args.lm_spec), sorted(args.lm_width), args.lm_k, args.lm_epochs,
            args.lm_model, args.lm_cache)


def _output(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """Where this run writes: the committed file only for the full set, else -o or PARTIAL_OUTPUT."""
    full = _measured_set(args) == _measured_set(ap.parse_args(FULL_ARGS))
    if args.output is None:
        return COMMITTED if full else PARTIAL_OUTPUT
    if not full and args.output.resolve() == COMMITTED.resolve():
        ap.error(f"{COMMITTED.relative_to(ROOT)} records the full set ({' '.join(FULL_ARGS)}); this run measures "
                 "another set: give another -o")
    return args.output


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path,
                    help=f"Results JSON (default: {COMMITTED.relative_to(ROOT)} for the full set, "
                         f"{PARTIAL_OUTPUT.relative_to(ROOT)} otherwise; the committed file takes only the full set).")
    ap.add_argument("--lm-width", type=int, nargs="+", default=[1024], help="Width(s) of the toy:lm SAE(s).")
    ap.add_argument("--lm-spec", nargs="+", default=["toy:lm"],
                    help="LM-like data set(s), e.g. toy:lm,hierarchy=512 to plant parent-child features.")
    ap.add_argument("--lm-k", type=int, default=64)
    ap.add_argument("--lm-epochs", type=int, default=10)
    ap.add_argument("--lm-model", type=Path, help="A saved SAE for toy:lm (instead of training one).")
    ap.add_argument("--lm-cache", type=Path, help="Where the trained toy:lm SAE is kept and reused, with one "
                    "--lm-width (default runs/chowliu_savings/lm-w{width}-k{k}-e{epochs}).")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--skip-lm", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="Timed runs of each encode/decode (the fastest is kept).")
    ap.add_argument("--threads", type=int, default=1)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.lm_cache is not None and len(args.lm_width) * len(args.lm_spec) > 1:
        ap.error("--lm-cache takes one --lm-width and one --lm-spec")
    output = _output(ap, args)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MDLCODEC_MNIST", str(ROOT / ".." / "shared" / "data" / "mnist"))

    from mdlcodec.data import load_dataset

    t_all = time.perf_counter()
    rows = []
    if not args.skip_mnist:
        select = json.loads((SELECT_DIR / "results.json").read_text())
        ds = load_dataset("mnist")
        print(f"MNIST: {len(ds.train)} train / {len(ds.test)} test", file=sys.stderr)
        for label, row in mnist_models(select):
            sae, source = load_or_train_mnist(row, select, ds)
            print(f"  {label}: width {source['width']} k {source['k']}", file=sys.stderr)
            rows.append(chowliu_savings(label, sae, ds.train, ds.test, MNIST_MAX_MSE, args.repeats,
                                        {"data": "mnist", **source}))
    if not args.skip_lm:
        for spec in args.lm_spec:
            ds = load_dataset(spec)
            slug = "lm" if spec == "toy:lm" else "".join(c if c.isalnum() else "_" for c in spec)
            for width in [None] if args.lm_model else args.lm_width:
                cache = (args.lm_cache or ROOT / "runs" / "chowliu_savings"
                         / f"{slug}-w{width}-k{args.lm_k}-e{args.lm_epochs}")
                sae, source = load_or_train_lm(ds, width, args.lm_k, args.lm_epochs, args.lm_model, cache)
                print(f"  {spec} ({len(ds.train)} train / {len(ds.test)} test): width {source['width']} "
                      f"k {source['k']}", file=sys.stderr)
                from mdlcodec.models.evaluate import feature_recovery

                truth = {"true_features_recovered": feature_recovery(sae.W_dec.detach().cpu().numpy(),
                                                                     ds.truth.directions)}
                rows.append(chowliu_savings(f"{spec} BatchTopK", sae, ds.train, ds.test, None, args.repeats,
                                            {"data": spec, **source, **truth}))
    table = markdown(rows)
    out = {"command": "python bench/chowliu_savings.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "torch": torch.__version__, "numpy": np.__version__},
           "seconds": time.perf_counter() - t_all, "rows": rows, "table": table}
    output.parent.mkdir(parents=True, exist_ok=True)
    from mdlcodec.core.atomic import atomic_output

    with atomic_output(output) as tmp:
        Path(tmp).write_text(json.dumps(out, indent=1) + "\n")
    print(table, end="")
    print(f"written: {output} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
