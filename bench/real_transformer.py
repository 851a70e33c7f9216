"""The README's real-transformer results: SAEs trained by mdlcodec on SmolLM2-135M's residual
stream, their rate-distortion curves against PCA, float16 and int8+zstd (plain, optimised and
Chow-Liu codes), and the MDL selection over widths 1x to 16x d_in.

    python bench/real_transformer.py                 # every step (about 75 minutes on 2 shared CPU cores)
    python bench/real_transformer.py --skip-train    # measure SAEs already in runs/real-sae-*
    python bench/real_transformer.py --only select   # only the selection

Steps, each an mdlcodec command printed before it runs (from the repository root):
1. the activations, if runs/real-acts is missing: ``python bench/harvest_real.py`` (300,000
   tokens of layer 15, d 576);
2. for each width: ``mdlcodec train runs/real-acts --arch batchtopk --width W --k 64 --epochs 8
   --lr 1e-3 -o runs/real-sae-W`` (training on the first 80% of tokens, 10% of them held out;
   the last 20% are the test split; lr 1e-3, not MNIST's 4e-3, which left half the latents of
   width 4,608 dead: bench/train_speed.py);
3. ``mdlcodec measure runs/real-sae-* runs/real-acts --max-fvu 0.1,0.2 --rdo --chow-liu -o
   docs/results/real-curve``: results.json, results.md and rd.png there (the .mdlc files it keeps
   there are not committed);
4. the selection on 40,000 tokens harvested with the massive activations left out
   (``harvest ... --tokens 40000 --max-norm-ratio 10 -o runs/real-acts-40k-cut``): ``mdlcodec
   select runs/real-acts-40k-cut --max-fvu 0.2 --widths 576,1152,2304,4608,9216 --quick --epochs 8
   --lr 1e-3 -o runs/select-lm``, its results and figures copied to docs/results/select-lm.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACTS = "runs/real-acts"
CUT = "runs/real-acts-40k-cut"
WIDTHS = (2304, 4608)
K = 64
EPOCHS = 8
LR = "1e-3"
TOLERANCES = "0.1,0.2"
SELECT_WIDTHS = "576,1152,2304,4608,9216"


def run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    code = subprocess.call(cmd if cmd[0] == "python" else [sys.executable, "-m", *cmd], cwd=ROOT)
    if code:
        sys.exit(code)


def select() -> None:
    if not (ROOT / CUT / "manifest.json").is_file():
        run(["mdlcodec", "harvest", "runs/smollm2-135m", "--layer", "15", "--text", "runs/real-text", "--tokens", "40000",
             "--max-norm-ratio", "10", "-o", CUT])
    run(["mdlcodec", "select", CUT, "--max-fvu", "0.2", "--widths", SELECT_WIDTHS, "--quick", "--epochs", "8",
         "--lr", LR, "-o", "runs/select-lm"])
    out = ROOT / "docs/results/select-lm"
    out.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "runs/select-lm").iterdir():
        if f.is_file():
            shutil.copy2(f, out / f.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-train", action="store_true", help="Measure the SAEs already in runs/real-sae-*.")
    p.add_argument("--only", choices=["measure", "select"], help="Run one part only.")
    p.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    args = p.parse_args()
    if not (ROOT / ACTS / "manifest.json").is_file():
        run(["python", "bench/harvest_real.py"])
    if args.only != "select":
        models = [f"runs/real-sae-{w}" for w in args.widths]
        if not args.skip_train:
            for w, m in zip(args.widths, models):
                run(["mdlcodec", "train", ACTS, "--arch", "batchtopk", "--width", str(w), "--k", str(K),
                     "--epochs", str(EPOCHS), "--lr", LR, "--force", "-o", m])
        run(["mdlcodec", "measure", *models, ACTS, "--max-fvu", TOLERANCES, "--rdo", "--chow-liu", "--force",
             "-o", "docs/results/real-curve"])
    if args.only != "measure":
        select()


if __name__ == "__main__":
    main()
