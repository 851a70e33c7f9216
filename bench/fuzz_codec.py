"""The codec fuzzer at volume (issue 12): random mutations of valid .mdlc files with every CRC
recomputed, and every structured attack, each decoded through Codec.decode, decode_file and
inspect_file; counts by outcome.

    python bench/fuzz_codec.py                       # 100,000 mutations + the structured attacks
    python bench/fuzz_codec.py --cases 2000 -o -     # a quick run, JSON on stdout only

Outcomes (tests/codec/fuzz.py): identical, refused (a MdlcodecError), valid-other (another output,
and the changed file is exactly what the encoder writes for it) are expected; wrong (another output
the encoder would not write), unexpected:<exception>, hang (over --time-limit seconds) and memory
(traced memory over fuzz.memory_bound) are failures, listed with what reproduces them. Writes
bench/results/fuzz_codec.json (the counts, the slowest case and the largest memory against its
bound, the machine) unless -o says otherwise; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.codec.fuzz, run from anywhere

import torch  # noqa: E402

from tests.codec import fuzz  # noqa: E402

PATHS = ("codec", "decode", "rows", "info")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000, help="random mutations (default 100,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds a path may take on one case")
    ap.add_argument("-o", "--output", default="bench/results/fuzz_codec.json", help="JSON results ('-': stdout only)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    bases = fuzz.bases()
    by_name = {b.name: b for b in bases}
    tmp = Path(tempfile.mkdtemp(prefix="fuzz_codec."))
    failures: list[dict] = []
    worst = {"seconds": (0.0, None), "memory_share_of_bound": (0.0, None)}

    def tally(counts: dict, record: list, case: dict) -> None:
        for path, outcome, seconds, peak, bound in record:
            counts[path][outcome] += 1
            if outcome not in fuzz.EXPECTED:
                failures.append({**case, "path": path, "outcome": outcome})
            if seconds > worst["seconds"][0]:
                worst["seconds"] = (seconds, {**case, "path": path})
            if peak / bound > worst["memory_share_of_bound"][0]:
                worst["memory_share_of_bound"] = (peak / bound, {**case, "path": path, "peak_mib": peak / 2**20,
                                                                 "bound_mib": bound / 2**20})

    t0 = time.perf_counter()
    structured = {p: collections.Counter() for p in PATHS}
    attacks = fuzz.attacks()
    for base, name, data in attacks:
        record: list = []
        fuzz.run_case(data, by_name[base], tmp, args.time_limit, PATHS, record)
        tally(structured, record, {"kind": "structured", "base": base, "attack": name, "bytes": len(data)})
    t_structured = time.perf_counter() - t0

    t0 = time.perf_counter()
    random = {p: collections.Counter() for p in PATHS}
    rng = np.random.default_rng(args.seed)
    for i in range(args.cases):
        base = bases[int(rng.integers(len(bases)))]
        state = rng.bit_generator.state
        data = fuzz.mutate(base.data, rng)
        record = []
        fuzz.run_case(data, base, tmp, args.time_limit, PATHS, record)
        tally(random, record, {"kind": "random", "case": i, "base": base.name, "bytes": len(data),
                               "rng_state": state})
        if (i + 1) % 10_000 == 0:
            print(f"{i + 1:,} mutations, {time.perf_counter() - t0:.0f} s, {len(failures)} failures", file=sys.stderr)
    t_random = time.perf_counter() - t0

    def plain(counts: dict) -> dict:
        return {p: dict(sorted(c.items())) for p, c in counts.items()}

    result = {
        "command": "python bench/fuzz_codec.py " + " ".join(sys.argv[1:]),
        "structured_attacks": len(attacks), "structured_seconds": round(t_structured, 1),
        "structured": plain(structured),
        "random_mutations": args.cases, "seed": args.seed, "random_seconds": round(t_random, 1),
        "random": plain(random),
        "failures": len(failures), "failure_cases": failures[:50],
        "slowest_seconds": round(worst["seconds"][0], 3), "slowest_case": worst["seconds"][1],
        "largest_memory_share_of_bound": round(worst["memory_share_of_bound"][0], 4),
        "largest_memory_case": worst["memory_share_of_bound"][1],
        "memory_bound": fuzz.memory_bound.__doc__.split("\n")[0] + " ...",
        "bases": [b.name for b in bases],
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                    "platform": platform.platform()},
    }
    text = json.dumps(result, indent=1, default=str)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text + "\n")
        print(json.dumps({k: result[k] for k in ("structured_attacks", "structured", "random_mutations", "random",
                                                 "failures", "slowest_seconds", "largest_memory_share_of_bound")},
                         indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
