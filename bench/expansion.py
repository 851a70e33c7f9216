"""How far real files expand when decoded (issue 29 §5): the ratio of float32 activations (32 * d_in bits
a sample) to the file's bits a sample, for every file measured in docs/results (SAEs, PCA, the
baselines) and bench/results/rdo_mnist.json (payloads: a file is a little longer), and of the latents' .npz (8 bytes of row pointer + 12 bytes per active latent) where L0
is known; beside mdlcodec.codec.expansion.MAX_EXPANSION, the ratio past which decoding refuses.

    python bench/expansion.py          # a table on stdout; reads the committed results, runs nothing
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdlcodec.codec.expansion import MAX_EXPANSION  # noqa: E402


def rows() -> list[tuple[str, str, int, float, float | None]]:
    """(results, file, d_in, file bits a sample, L0 or None) of every coded file in docs/results."""
    out = []
    for path in sorted((ROOT / "docs" / "results").glob("*/results.json")):
        r = json.loads(path.read_text())
        where = path.parent.name
        if r.get("schema", "").startswith("mdlcodec.measure/"):
            for row in r["rows"]:
                tag = f"{row['name']} at FVU {row['max_fvu']:g}"
                out.append((where, tag, r["data"]["d"], row["file_bits"], row.get("l0")))
                for extra in ("optimised", "chow_liu"):
                    if isinstance(row.get(extra), dict) and "file_bits" in row[extra]:
                        out.append((where, f"{tag}, {extra}", r["data"]["d"], row[extra]["file_bits"], None))
        elif "methods" in r:
            for m in r["methods"]:
                if m["method"] not in ("float32", "float16") and m.get("bits_per_sample"):
                    out.append((where, m["method"], r["d"], m["bits_per_sample"], None))
        elif "pca" in r and "rows" in r:
            d = r["data"]["d"] if isinstance(r.get("data"), dict) else None
            for m in [*r["rows"], r["pca"]]:
                if d and m.get("file_bits"):
                    out.append((where, f"{m['method']} width {m['width']}", d, m["file_bits"], m.get("quantised_l0")))
    rdo = ROOT / "bench" / "results" / "rdo_mnist.json"  # MNIST (d_in 784) payloads of plain, RDO and Chow-Liu codes
    if rdo.exists():
        for m in json.loads(rdo.read_text()):
            out.append(("rdo_mnist (payload)", m["method"], 784, m["payload_bits"], m.get("l0")))
    return out


def main() -> int:
    table = rows()
    print("| results | file | d_in | file bits/sample | float32 / file | latents .npz / file |")
    print("|---|---|---:|---:|---:|---:|")
    for where, name, d, bits, l0 in sorted(table, key=lambda t: -32 * t[2] / t[3]):
        lat = f"{(64 + 96 * l0) / bits:.1f}x" if l0 else ""
        print(f"| {where} | {name} | {d} | {bits:.1f} | {32 * d / bits:.0f}x | {lat} |")
    top = max(32 * d / bits for _, _, d, bits, _ in table)
    print(f"\nlargest: {top:.0f}x of {len(table)} files; decoding refuses more than {MAX_EXPANSION:,}x "
          f"({MAX_EXPANSION / top:.0f} times that) when the output is over 1 GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
