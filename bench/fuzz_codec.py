"""The codec fuzzer at volume (issue 12): random mutations of valid .mdlc files with every CRC
recomputed, and every structured attack, each decoded through Codec.decode, decode_file and
inspect_file; counts by outcome. Then issue 29's file classes 2 to 5 (``issue29_cases``) through
those and decode_file of the latents, counted by class.

    python bench/fuzz_codec.py                       # 100,000 mutations + the structured attacks + issue 29
    python bench/fuzz_codec.py --cases 2000 -o -     # a quick run, JSON on stdout only

Outcomes (tests/codec/fuzz.py): identical, refused (a MdlcodecError), valid-other (another output,
and the changed file is exactly what the encoder writes for it) are expected; wrong (another output
the encoder would not write), unexpected:<exception>, hang (over --time-limit seconds) and memory
(traced memory over fuzz.memory_bound) are failures, listed with what reproduces them; so is, in issue 29's classes, a
path that must refuse a case and decodes it (accepted). Writes
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


ISSUE29_PATHS = ("codec", "decode", "latents", "rows", "info")


def issue29_cases(bases, slow_rows: int, bomb_log2: int) -> list[dict]:
    """Issue 29's file classes (tests/codec/fuzz_classes.py), each case with the paths that must refuse
    it: 2 coded decoder rows the writer never writes and a bomb of 2**bomb_log2 coded weights under
    another fingerprint (every path reading the file's own model); 3 the slow legitimate file (none:
    it must decode, within the time limit); 4 a footer entry at a hidden chunk after the real one (every
    path: a full decode refuses the file); 5 row-count bombs (the paths whose output they inflate)."""
    from tests.codec import fuzz_classes as fc

    by = {b.name: b for b in bases}
    coded = fc.coded_base()
    own = ("decode", "latents", "rows", "info")
    cases = [{"class": "2 coded rows", "base": coded, "attack": n, "data": d, "must_refuse": own}
             for n, d in fc.coded_rows_attacks(coded)]
    half = bomb_log2 // 2
    cases.append({"class": "2 coded rows", "base": coded, "attack": f"bomb: 2^{bomb_log2} coded weights, another "
                  "fingerprint", "data": fc.coded_rows_bomb(1 << half, 1 << (bomb_log2 - half)),
                  "must_refuse": ISSUE29_PATHS})
    if slow_rows:
        slow = fc.slow_file(slow_rows)
        cases.append({"class": "3 slow files", "base": slow, "attack": slow.name, "data": slow.data, "must_refuse": ()})
    for b in bases:
        for n, d in fc.index_attacks(b):
            cases.append({"class": "4 random access", "base": b, "attack": f"{b.name}: {n}", "data": d,
                          "must_refuse": ISSUE29_PATHS})
    (wide_name, wide), (many_name, many) = fc.row_bombs()
    cases.append({"class": "5 row bombs", "base": by["embedded"], "attack": wide_name, "data": wide,
                  "must_refuse": ("codec", "decode")})
    cases.append({"class": "5 row bombs", "base": by["embedded"], "attack": many_name, "data": many,
                  "must_refuse": ("codec", "decode", "latents", "info")})
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000, help="random mutations (default 100,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds a path may take on one case")
    ap.add_argument("-o", "--output", default="bench/results/fuzz_codec.json", help="JSON results ('-': stdout only)")
    ap.add_argument("--no-issue29", dest="issue29", action="store_false",
                    help="skip issue 29's file classes 2 to 5 (tests/codec/fuzz_classes.py)")
    ap.add_argument("--slow-rows", type=int, default=10_000,
                    help="class 3: one-row chunks of the slow file (default 10,000; 0 skips it: 90 s to make)")
    ap.add_argument("--coded-bomb-log2", type=int, default=27,
                    help="class 2: log2 of the coded decoder weights of the bomb (default 27, the issue's)")
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

    t0 = time.perf_counter()
    classes: dict[str, dict] = {}
    if args.issue29:
        for case in issue29_cases(bases, args.slow_rows, args.coded_bomb_log2):
            record = []
            fuzz.run_case(case["data"], case["base"], tmp, args.time_limit, ISSUE29_PATHS, record)
            counts = classes.setdefault(case["class"], {p: collections.Counter() for p in ISSUE29_PATHS})
            for i, (path, outcome, seconds, peak, bound) in enumerate(record):
                if path in case["must_refuse"] and outcome in fuzz.EXPECTED and outcome != "refused":
                    outcome = f"accepted ({outcome})"  # a file the writer never writes, or a bomb, decoded
                    record[i] = (path, outcome, seconds, peak, bound)
                counts[path][outcome] += 1
            for path, outcome, seconds, peak, bound in record:
                entry = {"kind": "issue 29", "class": case["class"], "attack": case["attack"], "path": path,
                         "bytes": len(case["data"])}
                if outcome not in fuzz.EXPECTED:
                    failures.append({**entry, "outcome": outcome})
                if seconds > worst["seconds"][0]:
                    worst["seconds"] = (seconds, entry)
                if peak / bound > worst["memory_share_of_bound"][0]:
                    worst["memory_share_of_bound"] = (peak / bound, {**entry, "peak_mib": peak / 2**20,
                                                                     "bound_mib": bound / 2**20})
            print(f"issue 29 class {case['class']}: {case['attack']}: "
                  + ", ".join(f"{p} {o} ({s:.1f} s)" for p, o, s, _, _ in record), file=sys.stderr)
    t_classes = time.perf_counter() - t0

    def plain(counts: dict) -> dict:
        return {p: dict(sorted(c.items())) for p, c in counts.items()}

    result = {
        "command": "python bench/fuzz_codec.py " + " ".join(sys.argv[1:]),
        "structured_attacks": len(attacks), "structured_seconds": round(t_structured, 1),
        "structured": plain(structured),
        "random_mutations": args.cases, "seed": args.seed, "random_seconds": round(t_random, 1),
        "random": plain(random),
        "issue29_seconds": round(t_classes, 1),
        "issue29_classes": {c: plain(v) for c, v in classes.items()},
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
                                                 "issue29_classes", "failures", "slowest_seconds",
                                                 "largest_memory_share_of_bound")},
                         indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
