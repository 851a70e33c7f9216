"""CPU seconds of `mdlcodec measure` against `mdlcodec measure --rdo` on the same SAE and data, in one
run (issue 18: --rdo within 3x of plain), each command in its own process on one torch thread; with
their bits per sample (file, plain and optimised) read from results.json.

    mdlcodec harvest runs/smollm2-135m --layer 15 -o runs/real-acts --text runs/real-text --tokens 300000 \\
        --max-length 128 --batch-size 8 --threads 1
    mdlcodec train runs/real-acts --arch batchtopk --width 2304 --k 64 --epochs 2 -o runs/rdo-bench-sae --threads 1
    python bench/rdo_measure_speed.py runs/rdo-bench-sae runs/real-acts --max-fvu 0.2 [--parallel]

Measured (shared 2-core machine, other jobs running; CPU seconds = user + sys of the command;
SmolLM2-135M layer 15, 240,000 train / 60,000 test tokens, d 576; BatchTopK width 2304, k 64):

    before this change (fit_rd_codec's bisections over the whole splits): not run to the end on
      these 300,000 tokens (over 30 minutes, the issue); on MNIST (runs/mnist-128, --max-mse 0.015)
      fit_rd_codec took 60.0 s CPU against 1.3 s for plain fit_codec (46x), 65.07 bits/image
    first version of the new search (search rows 16,384 train / 8,192 test, exact MSE everywhere):
      plain measure 184.1 s, measure --rdo 551.9 s (3.0x); plain 227.28 file bits/token, optimised
      149.50 (payload 149.41, cross-entropy 149.40: payload/cross-entropy 1.0001), FVU 0.1982
    this version (python bench/rdo_measure_speed.py runs/rdo-bench-sae runs/real-acts --max-fvu 0.2 --parallel):
      plain measure 177.2 s CPU, measure --rdo 446.8 s CPU: 2.52x; plain 227.28 file bits/token,
      optimised 146.45 (payload 146.36, cross-entropy 146.36: payload/cross-entropy 1.00003), FVU 0.1995
    MNIST, the command itself (runs/mnist-128 copied, --max-mse 0.015 --hierarchy flat --threads 1):
      fit-codec 4.4 s CPU, fit-codec --rdo 8.0 s CPU (1.8x); 83.73 -> 65.08 bits/image (65.07 before)
With --parallel the wall figures overlap (the second is counted from the first's end); the CPU ones do not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str]) -> subprocess.Popen:
    print("$", " ".join(cmd), flush=True)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cpu_of(p: subprocess.Popen) -> tuple[float, float, str]:
    """(cpu seconds, wall seconds, output) of a started process, waited for."""
    t = time.time()
    _, status, ru = __import__("os").wait4(p.pid, 0)
    out = p.stdout.read()
    p.returncode = status
    if status != 0:
        sys.exit(f"failed ({status}):\n{out}")
    return ru.ru_utime + ru.ru_stime, time.time() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--max-fvu", default="0.2")
    ap.add_argument("--parallel", action="store_true", help="run both at once (two cores): same CPU figures, half the wait")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {name: ["mdlcodec", "measure", args.model, args.data, "--max-fvu", args.max_fvu, "--no-pca", "--threads", "1",
                       "-o", str(Path(tmp) / name), *extra] for name, extra in (("plain", []), ("rdo", ["--rdo"]))}
        res = {}
        if args.parallel:
            procs = {name: run(c) for name, c in cmds.items()}
            res = {name: cpu_of(p) for name, p in procs.items()}
        else:
            for name, c in cmds.items():
                res[name] = cpu_of(run(c))
        rows = {name: json.loads((Path(tmp) / name / "results.json").read_text()) for name in cmds}
    for name, (cpu, wall, out) in res.items():
        print(f"{name}: {cpu:.1f} s CPU ({wall:.1f} s wall)")
    r = rows["rdo"]["rows"][0]
    o = r["optimised"]
    print(f"measure --rdo / measure: {res['rdo'][0] / res['plain'][0]:.2f}x CPU")
    print(f"plain file {r['file_bits']:.2f} bits/sample; optimised file {o['file_bits']:.2f}, payload {o['payload_bits']:.2f}, "
          f"cross-entropy {o['cross_entropy_bits']:.2f} (payload/cross-entropy {o['payload_bits'] / o['cross_entropy_bits']:.5f}), "
          f"FVU {o['fvu']:.4f}, RDO lambda {o['rdo_lambda']}")


if __name__ == "__main__":
    main()
