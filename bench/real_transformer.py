"""The README's real-transformer results: SAEs trained by mdlcodec on SmolLM2-135M's residual
stream, measured against PCA, float16 and int8+zstd at FVU 0.1 and 0.2.

    python bench/real_transformer.py                 # every step (about 90 minutes on 2 shared CPU cores)
    python bench/real_transformer.py --skip-train    # measure SAEs already in runs/real-sae-*

Steps, each an mdlcodec command printed before it runs (from the repository root):
1. the activations, if runs/real-acts is missing: ``python bench/harvest_real.py`` (300,000
   tokens of layer 15, d 576);
2. for each width: ``mdlcodec train runs/real-acts --arch batchtopk --width W --k K --epochs E
   -o runs/real-sae-W`` (training on the first 80% of tokens, 10% of them held out for early
   stopping; the last 20% are the test split);
3. for each tolerance: ``mdlcodec measure runs/real-sae-* runs/real-acts --max-fvu F -o
   docs/results/real/fvuF``, which writes results.json and results.md there.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACTS = "runs/real-acts"
WIDTHS = (2304, 4608)
K = 64
EPOCHS = 8
TOLERANCES = (0.1, 0.2)


def run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    code = subprocess.call(cmd if cmd[0] == "python" else [sys.executable, "-m", *cmd], cwd=ROOT)
    if code:
        sys.exit(code)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-train", action="store_true", help="Measure the SAEs already in runs/real-sae-*.")
    p.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    p.add_argument("--k", type=int, default=K)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    args = p.parse_args()
    if not (ROOT / ACTS / "manifest.json").is_file():
        run(["python", "bench/harvest_real.py"])
    models = [f"runs/real-sae-{w}" for w in args.widths]
    if not args.skip_train:
        for w, m in zip(args.widths, models):
            run(["mdlcodec", "train", ACTS, "--arch", "batchtopk", "--width", str(w), "--k", str(args.k),
                 "--epochs", str(args.epochs), "--force", "-o", m])
    for f in TOLERANCES:
        run(["mdlcodec", "measure", *models, ACTS, "--max-fvu", str(f), "--force", "-o", f"docs/results/real/fvu{f}"])


if __name__ == "__main__":
    main()
