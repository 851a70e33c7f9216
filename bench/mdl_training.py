"""SAEs trained for description length against the BatchTopK SAE of the same width, measured from
real .mdlc files (issue 14, item 3).

    python bench/mdl_training.py [--threads 1] [--seed 0] [--out-dir runs/mdl_training] [--json]

MNIST's project split (8,000 train / 2,000 test), tolerance test MSE <= 0.015, width 128. Four SAEs,
each saved in OUT_DIR/<name>/:

- batchtopk: BatchTopK, k 16, the trainer's defaults (100 epochs at most, lr 4e-3; as
  bench/train_mnist.py), objective mse: the reference.
- batchtopk+30: the reference trained 30 more epochs at lr 1e-3, objective mse: the control for
  the extra training the fine-tuned row gets.
- batchtopk-mdl: BatchTopK, k 16, trained from scratch with objective mdl (models.rate: MSE +
  beta * the estimated bits, beta starting at 0.5 and steered to the tolerance), same 100 epochs.
- jumprelu-mdl: the reference made a JumpReLU SAE (its threshold on every latent) and fine-tuned
  30 epochs at lr 1e-3 with objective mdl (beta starting at 1): thresholds per feature learned
  through the rate. This is what `mdlcodec select --objectives mse,mdl` trains per width.

All four are measured with selection.compare.measure_saes (what `mdlcodec measure` runs): the
coarsest step meeting the tolerance, tables from the training split, the test split encoded to a
real file and read back. Printed per SAE: payload and file bits per image (activity + values), L0,
the quantised test MSE, the step, training seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from mdlcodec.data import load_dataset
from mdlcodec.measurement.compare import measure_saes
from mdlcodec.models import SAEConfig, TrainConfig, save_sae, train_sae
from mdlcodec.models.jumprelu import jumprelu_from

TOL = 0.015
WIDTH, K = 128, 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", default="runs/mdl_training", type=Path)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("mnist")
    base = TrainConfig(seed=args.seed, device=args.device, progress=False)
    fine = dataclasses.replace(base, epochs=30, lr=1e-3)
    mdl = {"objective": "mdl", "target_mse": TOL}
    btk = SAEConfig("batchtopk", ds.d, WIDTH, k=K)
    saes, seconds = [], {}

    def train(name: str, cfg: SAEConfig, tcfg: TrainConfig, init=None):
        t0 = time.perf_counter()
        sae, _ = train_sae(cfg, ds.train, None, tcfg, init=init)
        seconds[name] = time.perf_counter() - t0
        save_sae(sae, args.out_dir / name)
        saes.append((name, str(args.out_dir / name), sae))
        return sae

    ref = train("batchtopk", btk, base)
    train("batchtopk+30", btk, fine, init=ref)
    train("batchtopk-mdl", btk, dataclasses.replace(base, **mdl))  # beta starts at DEFAULT_BETA (0.5), as in `train`
    start = jumprelu_from(ref)
    train("jumprelu-mdl", start.cfg, dataclasses.replace(fine, beta=1.0, **mdl), init=start)
    result = measure_saes(saes, ds, max_mse=TOL, pca=False, stored=False, device=args.device)
    rows = [{"name": r["name"], "arch": r["arch"], "payload_bits": r["payload_bits"], "file_bits": r["file_bits"],
             "activity_bits": r["activity_bits"], "values_bits": r["values_bits"], "l0": r["l0"], "mse": r["mse"],
             "step": r["step"], "train_seconds": seconds[r["name"]]} for r in result["rows"]]
    report = {"data": ds.name, "tolerance_mse": TOL, "width": WIDTH, "k": K, "seed": args.seed, "rows": rows,
              "skipped": result["skipped"], "machine": result["machine"], "versions": result["versions"]}
    if args.json:
        print(json.dumps(report))
        return
    print(f"{ds.name}, width {WIDTH}, test MSE <= {TOL}; real .mdlc files, bits per test image, shortest first")
    print("| SAE | payload | file | activity | values | L0 | quantised test MSE | step | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['payload_bits']:.2f} | {r['file_bits']:.2f} | {r['activity_bits']:.2f} | "
              f"{r['values_bits']:.2f} | {r['l0']:.2f} | {r['mse']:.5f} | {r['step']:.3g} | {r['train_seconds']:.0f} |")
    for s in result["skipped"]:
        print(f"skipped {s['name']}: {s['reason']}")


if __name__ == "__main__":
    main()
