"""Regenerate every figure of the README's Results section into docs/results/ and print the tables.

    python bench/readme_results.py            # all five (about 25 minutes on 2 CPU cores)
    python bench/readme_results.py splitting  # any of: mnist, lm, splitting, select, hierarchy

Each entry is exactly the command the README shows beside its table; this script only runs them in
turn from the repository root, the bench and splitting commands with --force (replacing the
committed results). select has no --force: it rewrites its results and reuses the SAEs it finds in
docs/results/select/cache/ (not committed), so on a fresh checkout it trains them all again.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "mnist": "mdlcodec bench mnist -o docs/results/mnist --threads 1",
    "lm": "mdlcodec bench toy:lm,n=60000 --width 1024 --epochs 20 -o docs/results/lm --threads 1",
    "splitting": "mdlcodec splitting -o docs/results/splitting",
    "select": "mdlcodec select mnist --quick --threads 1 -o docs/results/select",
    "hierarchy": "mdlcodec hierarchy-figure -o docs/results/hierarchy",
}
TAKES_FORCE = {"mnist", "lm", "splitting", "hierarchy"}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in COMMANDS]
    if unknown:
        print(f"error: unknown result(s) {', '.join(unknown)}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    for name in names or list(COMMANDS):
        force = ["--force"] if name in TAKES_FORCE else []
        cmd = shlex.split(COMMANDS[name]) + force
        print(f"$ {shlex.join(cmd)}", flush=True)
        code = subprocess.call([sys.executable, "-m", "mdlcodec", *cmd[1:]], cwd=ROOT)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
