"""Bounded memory on a large activation store: encode and decode a shard folder far larger than the
memory the codec may use, through the CLI a user runs, and record peak memory (PSS, RSS), wall time and the
speed-up of 2 workers over 1.

    python bench/scale_store.py --out /path/with/space [--gb 10] [--speedup-gb 0.5]

What it does (each step skipped when its output exists, so a long run can be resumed):
  1. A shard folder of ``--gb`` GB of float32 activations, d=768: the synthetic LM-like set
     (``toy:lm``: 4,096 features in superposition, L0 about 64) drawn once for 65,536 rows, each
     shard a seeded permutation of those rows plus Gaussian noise (std 0.05 per dimension), so no
     two shards are equal and the whole never sits in memory.
  2. A TopK SAE, d_in 768, D = 16,384, k = 64, random unit-norm dictionary (speed and memory do not
     depend on training; bench/codec_speed.py does the same), its codec tables fitted with a step
     of a sixteenth of the median active value on 16,384 rows of the first shard.
  3. ``mdlcodec encode FOLDER -m SAE -o big.mdlc --workers 2`` and ``mdlcodec decode big.mdlc -m SAE
     -o big.npy --workers 2``: wall time and peak memory of the whole process tree (the CLI, the forkserver and
     the workers, summed, sampled every 0.2 s from /proc/PID/smaps_rollup: PSS, which counts a page
     shared by several processes once, against the target of 1.5 GB; RSS and anonymous memory beside).
  4. Speed-up: the first ``--speedup-gb`` GB (its own folder of the first shards; 0.5 rounds to 2
     shards, 0.40 GB) encoded with ``--workers 1`` and ``--workers 2`` in turn, ``--repeats`` times,
     the fastest of each counting, timed without sampling memory (``run_measured``); target >= 1.7x on
     2 cores, start-up included.
Prints one table and writes OUT/results.json; ``--steps`` reruns some of 3 and 4, keeping the others'
figures.

Issue 21 §3 (a 2-core machine shared with other benchmarks, so the wall times are upper bounds; PSS
does not depend on the load). Before, at 789e9ce: 10 GB encode 1.68 GiB PSS (docs/usage.md's run);
the 0.40 GB folder 1.62 GiB, 1.64x (72.1 s / 43.9 s, near idle). Where it went, per process of the
0.40 GB encode: the parent 528 MB PSS (it loaded the whole SAE and a copy of W_dec to write the
header), each worker about 610 MB: torch's imports, the SAE plus the decoder's float32 copy of
W_dec, 64 MiB batches of pre-activations (3 such matrices at once), up to two shards' pages of the
memory-mapped input (about 70 MB a worker: a source was kept open between chunks) and glibc's heap
keeping what the chunks freed (about 400 MB a worker after a few chunks). After (the parent loads
no encoder, one W_dec shared by the SAE and the decoder, 16 MiB batches, the input opened per
chunk, the heap trimmed after each chunk): 10 GB encode --workers 2 1,615 s, peak PSS 1.25 GiB
(1.34 GB; RSS 1.89 GiB), measured before the heap trim was added; the 0.40 GB folder 1.32 GiB
with it (parent 259 MB, forkserver 177 MB, workers about 520 MB each at their peak, mid-chunk;
1.42 GiB in a run without it). Speed-up: 1.78x on an idle machine (72.3 s / 40.7 s,
3e305d8); 1.60x (66.3 s / 41.5 s) in a run here while the machine was not quite idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D_IN, D_SAE, K = 768, 16_384, 64
SHARD_ROWS = 65_536
NOISE = 0.05


def memory(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, private anonymous) bytes of one process from /proc/PID/smaps_rollup; zeros if it is
    gone. RSS counts pages shared with other processes (the forkserver's torch, the page cache of a
    memory-mapped shard) in full in each; PSS splits each shared page between the processes mapping it,
    so PSS sums to the memory the process tree really holds."""
    try:
        fields = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
        return fields.get("Rss", 0), fields.get("Pss", 0), fields.get("Anonymous", 0)
    except (OSError, IndexError, ValueError):
        return 0, 0, 0


def tree(pid: int) -> list[int]:
    """pid and every descendant, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo.extend(children.get(q, []))
    return out


def run_measured(cmd: list[str], sample: bool = True) -> dict:
    """Run cmd; wall seconds and, with ``sample``, the peaks of its process tree's summed RSS, PSS and
    anonymous memory (bytes, ``memory``), sampled every 0.2 s. Timings meant to be compared are taken
    without: reading a process's smaps_rollup walks its page tables under its memory-map lock, 20 ms
    of CPU or more per sample of 3 processes here, which slows a run on every core more than a run
    on one."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = np.zeros(3, dtype=np.int64)
    while sample and proc.poll() is None:
        peaks = np.maximum(peaks, np.sum([memory(p) for p in tree(proc.pid)], axis=0, dtype=np.int64))
        time.sleep(0.2)
    out = proc.communicate()[0]
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    r = {"seconds": seconds, "command": " ".join(cmd)}
    if sample:
        r.update(peak_rss_bytes=int(peaks[0]), peak_pss_bytes=int(peaks[1]), peak_anonymous_bytes=int(peaks[2]))
    return r


def make_store(folder: Path, gb: float, base: np.ndarray) -> None:
    from mdlcodec.core.atomic import atomic_folder
    from mdlcodec.data.shards import ShardWriter

    if folder.exists():
        return
    n_shards = max(1, round(gb * 1e9 / (SHARD_ROWS * D_IN * 4)))
    with atomic_folder(folder) as tmp:
        w = ShardWriter(tmp, D_IN, shard_tokens=SHARD_ROWS)
        for i in range(n_shards):
            rng = np.random.default_rng(1000 + i)
            rows = base[rng.permutation(len(base))]
            rows += np.float32(NOISE) * rng.standard_normal(rows.shape, dtype=np.float32)
            w.add(rows)
        w.finish(source="bench/scale_store.py: toy:lm rows permuted + noise")


def make_sae(folder: Path, fit_rows: np.ndarray) -> None:
    import torch

    from mdlcodec.codec import Codec
    from mdlcodec.models import SAEConfig, make_sae as new_sae, save_sae

    if (folder / "codec.safetensors").exists():
        return
    torch.manual_seed(0)
    sae = new_sae(SAEConfig(arch="topk", d_in=D_IN, d_sae=D_SAE, k=K))
    z = Codec.sae_sparse_encoder(sae)(fit_rows)
    step = float(np.median(np.abs(z.values[z.values != 0]))) / 16
    save_sae(sae, folder)
    Codec.fit(sae, fit_rows, step).save_tables(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="A folder on a disk with 2.2 x GB free.")
    ap.add_argument("--gb", type=float, default=10.0, help="Size of the store in GB of float32.")
    ap.add_argument("--speedup-gb", type=float, default=0.5, help="Size of the store the 1- vs 2-worker speed-up is timed on.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="Tries of each speed-up run; the fastest of each counts.")
    ap.add_argument("--steps", default="encode,decode,speedup",
                    help="Which of the measured steps to run (the others' figures are kept from OUT/results.json).")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    from mdlcodec.data import load_dataset

    base = None
    if not (out / "store").exists() or not (out / "small").exists() or not (out / "sae").exists():
        base = np.asarray(load_dataset(f"toy:lm,n={int(SHARD_ROWS / 0.8) + 1}").train[:SHARD_ROWS], np.float32)
    t = time.perf_counter()
    make_store(out / "store", args.gb, base)
    make_store(out / "small", args.speedup_gb, base)
    make_sae(out / "sae", base[:16_384] if base is not None else None)
    print(f"store ready ({time.perf_counter() - t:.0f} s)", flush=True)
    store_bytes = sum(p.stat().st_size for p in (out / "store").glob("*.npy"))
    rows = json.loads((out / "store" / "manifest.json").read_text())["total_tokens"]

    cli = [sys.executable, "-m", "mdlcodec"]
    steps = set(args.steps.split(","))
    kept = out / "results.json"
    results: dict = json.loads(kept.read_text()) if kept.exists() and steps != {"encode", "decode", "speedup"} else {}
    results.update({"store_bytes": store_bytes, "rows": rows, "d_in": D_IN, "d_sae": D_SAE, "k": K, "cpus": os.cpu_count()})
    w = str(args.workers)
    if "encode" in steps:
        (out / "big.mdlc").unlink(missing_ok=True)
        results["encode"] = run_measured(cli + ["encode", str(out / "store"), "-m", str(out / "sae"),
                                                "-o", str(out / "big.mdlc"), "--workers", w])
        print("encode", results["encode"], flush=True)
        results["file_bytes"] = (out / "big.mdlc").stat().st_size
    if "decode" in steps:
        (out / "big.npy").unlink(missing_ok=True)
        results["decode"] = run_measured(cli + ["decode", str(out / "big.mdlc"), "-m", str(out / "sae"),
                                                "-o", str(out / "big.npy"), "--workers", w])
        print("decode", results["decode"], flush=True)
        (out / "big.npy").unlink()
    for rep in range(args.repeats if "speedup" in steps else 0):  # 1 and 2 workers in turn, so that a load that comes and goes falls on both
        for n in (1, 2):
            (out / f"small-{n}.mdlc").unlink(missing_ok=True)
            r = run_measured(cli + ["encode", str(out / "small"), "-m", str(out / "sae"),
                                    "-o", str(out / f"small-{n}.mdlc"), "--workers", str(n)], sample=False)
            print(f"small encode, {n} worker(s), try {rep + 1}", r, flush=True)
            if rep == 0:
                results[f"small_encode_{n}"], results[f"small_encode_{n}_seconds"] = r, []
            elif r["seconds"] < results[f"small_encode_{n}"]["seconds"]:
                results[f"small_encode_{n}"] = r
            results[f"small_encode_{n}_seconds"].append(r["seconds"])
    if "speedup" in steps:
        results["speedup_2_over_1"] = results["small_encode_1"]["seconds"] / results["small_encode_2"]["seconds"]
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    gib = 2**30
    print(f"\nstore: {store_bytes / 1e9:.2f} GB float32 ({rows:,} rows, d={D_IN}); "
          f"SAE D={D_SAE:,}, k={K}; {os.cpu_count()} CPUs")
    for step in ("encode", "decode"):
        r = results.get(step)
        if r is None:
            continue
        print(f"  {step} --workers {w}: {r['seconds']:8.0f} s, {store_bytes / 1e6 / r['seconds']:6.1f} MB/s, "
              f"peak PSS {r['peak_pss_bytes'] / gib:.2f} GiB (target < 1.5 GB), RSS {r['peak_rss_bytes'] / gib:.2f} GiB, "
              f"anonymous {r['peak_anonymous_bytes'] / gib:.2f} GiB")
    if "file_bytes" in results:
        print(f"  file {results['file_bytes'] / 1e6:.1f} MB ({8 * results['file_bytes'] / (store_bytes // (4 * D_IN)):.1f} bits/row)")
    if "speedup_2_over_1" in results:
        t1, t2 = results["small_encode_1_seconds"], results["small_encode_2_seconds"]
        print(f"  speed-up of 2 workers over 1 on {args.speedup_gb} GB: {results['speedup_2_over_1']:.2f}x (target >= 1.7x; "
              f"fastest of {len(t1)}: 1 worker {min(t1):.1f} s, 2 workers {min(t2):.1f} s)")


if __name__ == "__main__":
    main()
