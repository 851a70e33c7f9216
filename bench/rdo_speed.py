"""Encode speed of plain against RDO encoding (Codec.encode of the test split, same tables) for SAEs of
several widths, on one CPU thread: how RDO's cost scales with the width.

    python bench/rdo_speed.py runs/mnist-128 runs/mnist-512
"""

from __future__ import annotations

import argparse
import time

import torch

from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.codec.rate.rdo import natural_lambda
from mdlcodec.data import load_dataset
from mdlcodec.models import load_sae


def best_seconds(f, repeats: int = 5) -> float:
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        out = min(out, time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--tol", type=float, default=0.015)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    print("| width | plain encode s | RDO encode s | ratio | plain bits | RDO bits (same tables) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for m in args.models:
        sae = load_sae(m)
        plain, rep = fit_codec(sae, ds.train, ds.test, max_mse=args.tol, hierarchy="flat")
        rdo = plain.with_rdo(natural_lambda(plain.decoder, rep["step"]))
        tp, tr = (best_seconds(lambda c=c: c.encode(ds.test)) for c in (plain, rdo))
        bits = [8 * len(c.encode(ds.test)) / len(ds.test) for c in (plain, rdo)]
        print(f"| {sae.cfg.d_sae} | {tp:.3f} | {tr:.3f} | {tr / tp:.1f} | {bits[0]:.1f} | {bits[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
