"""Shorter codes for the same decoder on MNIST (issue 14): plain encoding against per-feature steps,
rate-distortion optimised encoding (RDO) and both, flat and Chow-Liu, and PCA, at test MSE <= TOL.
Every payload is that of a real .mdlc file of the 2,000-image test split, decoded back exactly
(selection.measure.measure_codec); encode times are of Codec.encode on the test split.

    mdlcodec train mnist --arch batchtopk --width 128 --k 16 -o runs/mnist-128
    python bench/rdo_mnist.py runs/mnist-128 [--width512 DIR]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.codec.rate.rd_fit import fit_rd_codec
from mdlcodec.data import load_dataset
from mdlcodec.measurement.measure import measure_codec, measure_pca
from mdlcodec.models import load_sae


def encode_seconds(codec, x, repeats: int = 3) -> float:
    """Best of ``repeats`` wall-clock seconds of codec.encode(x)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        codec.encode(x)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--tol", type=float, default=0.015)
    ap.add_argument("--width512", help="a second (wider) SAE folder: encode speed only, to show scaling")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    sae = load_sae(args.model)
    rows = []

    def row(name, codec, extra=None):
        m = measure_codec(codec, ds.test)
        r = {"method": name, "payload_bits": m["payload_bits"], "cross_entropy_bits": m["cross_entropy_bits"]["total"],
             "test_mse": m["quantised_test_mse"], "l0": m["quantised_l0"],
             "rdo_lambda": getattr(codec, "rdo_lambda", None), "encode_s": encode_seconds(codec, ds.test), **(extra or {})}
        rows.append(r)
        print(json.dumps(r), flush=True)

    for h, label in (("flat", "flat"), ("chowliu", "Chow-Liu")):
        plain, _ = fit_codec(sae, ds.train, ds.test, max_mse=args.tol, hierarchy=h)
        row(f"plain {label}", plain)
        for name, configs in (("+per-feature steps", [(0.5, None), (1.0, None), (2.0, None)]),
                              ("+RDO", [(None, 0.7), (None, 1.0), (None, 1.4)]),
                              ("+both", [(1.0, 0.7), (1.0, 1.0), (1.0, 1.4)])):
            t = time.perf_counter()
            codec, rep = fit_rd_codec(sae, ds.train, ds.test, args.tol, hierarchy=h, configs=configs,
                                      include_plain=False)
            row(f"{name} {label}", codec, {"fit_s": time.perf_counter() - t, "chosen": rep["chosen"]})
    pca, _ = measure_pca(ds.train, ds.test, args.tol)
    row("PCA", pca)
    if args.width512:
        wide = load_sae(args.width512)
        plain, _ = fit_codec(wide, ds.train, ds.test, max_mse=args.tol, hierarchy="flat")
        codec, _ = fit_rd_codec(wide, ds.train, ds.test, args.tol, per_feature=False, rdo=True, kappas=(1.0,))
        for name, c in (("plain flat w512", plain), ("+RDO flat w512", codec)):
            row(name, c)
    print("\n| method | payload bits/image | test MSE | L0 | encode s (2,000 images) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['payload_bits']:.2f} | {r['test_mse']:.5f} | {r['l0']:.2f} | {r['encode_s']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=str)


if __name__ == "__main__":
    main()
