"""Issue 19's hostile environments at volume, the sibling of bench/fuzz_codec.py (which crafts files):
each class is attacked through the real `mdlcodec` command in a subprocess, as a shell or a job
scheduler would run it, and every outcome is counted.

    python bench/fuzz_environment.py               # 20 kills, 20 races, every other class once per variant
    python bench/fuzz_environment.py --repeat 5    # a quick run

Classes and what counts as a failure:
  kill -9      encode --workers 2 killed at a random moment: a process of its tree alive 10 s later,
               the caller's pipes still open after 20 s, or a temporary file a later run keeps
  two writers  two encodes to one -o without --force started together: not exactly one success
  os errors    encode (serial, --workers 2), decode (rows, --latents), train, with writes refused
               by the kernel (RLIMIT_FSIZE: EFBIG, the same write calls as a full disk): a traceback,
               more than one error line, no path in it, or anything left beside the output
  inputs       encode --split test|train -o its own input (.npy, .npz:KEY), decode -o a model file,
               each with --force: the input changed
  json         a 5,000-digit integer, 100,000-deep nesting, NaN, a duplicate key in the model's
               mdlcodec_sae.json and a shard manifest: a traceback or more than one line
  not files    a FIFO as codec.safetensors, mdlcodec_sae.json, mdlcodec_sae.safetensors,
               manifest.json, a shard: over 10 s (a hang)
Writes bench/results/fuzz_environment.json; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CMD = [sys.executable, "-m", "mdlcodec"]

from mdlcodec.models.io import CFG_FILE, WEIGHTS_FILE  # noqa: E402  (the model folder's files)
from tests.cli.test_hostile_env import _alive, _descendants, _leftovers  # noqa: E402


def mdlcodec(*args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def one_line(r: subprocess.CompletedProcess, needle: str = "") -> bool:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (r.returncode != 0 and "Traceback" not in r.stderr and len(errors) == 1 and errors[0] == lines[-1]
            and needle in errors[0])


def setup(root: Path) -> dict:
    model = root / "model"
    r = mdlcodec("train", "toy:n=3000,n_features=24,d=12,l0=2", "--arch", "batchtopk", "--width", 24, "--k", 2,
                 "--epochs", 2, "-o", model)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(0).normal(size=(1_000_000, 12)).astype(np.float32)
    np.save(root / "big.npy", x)
    np.save(root / "x.npy", x[:600])
    np.savez(root / "x.npz", acts=x[:600])
    assert mdlcodec("encode", root / "x.npy", "-m", model, "-o", root / "x.mdlc", "--embed-model").returncode == 0
    return {"model": model, "big": root / "big.npy", "x": root / "x.npy", "npz": root / "x.npz", "mdlc": root / "x.mdlc"}


def kill9(f: dict, out_dir: Path, rng: random.Random) -> str:
    out = out_dir / "k.mdlc"
    p = subprocess.Popen([*CMD, "encode", f["big"], "-m", f["model"], "-o", out, "--workers", "2", "--chunk-size", "500"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 60 and p.poll() is None and len(_descendants(p.pid)) < 4:
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 2))
    tree = _descendants(p.pid)
    if p.poll() is not None:
        return "finished before the kill"
    p.kill()
    try:
        p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        return "pipes held open"
    t0 = time.time()
    while _alive(tree) and time.time() - t0 < 10:
        time.sleep(0.1)
    if _alive(tree):
        return "processes left"
    np.save(out_dir / "s.npy", np.load(f["x"])[:50])
    r = mdlcodec("encode", out_dir / "s.npy", "-m", f["model"], "-o", out, "--force")
    return "ok" if r.returncode == 0 and not _leftovers(out_dir, out.name) else "leftover temporary file"


def writers(f: dict, out_dir: Path) -> str:
    out = out_dir / "w.mdlc"
    args = [*CMD, "encode", f["big"], "-m", f["model"], "-o", out]
    ps = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=600) for p in ps)
    return "ok" if codes == [0, 1] else f"exit codes {codes}"


def os_errors(f: dict, out_dir: Path) -> dict[str, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (500, 500))

    cases = {"encode": ["encode", f["x"], "-m", f["model"], "-o", out_dir / "o.mdlc"],
             "encode --workers 2": ["encode", f["x"], "-m", f["model"], "-o", out_dir / "o.mdlc", "--workers", 2],
             "decode": ["decode", f["mdlc"], "-o", out_dir / "o.npy"],
             "decode --rows 10:500": ["decode", f["mdlc"], "-o", out_dir / "o.npy", "--rows", "10:500"],
             "decode --latents": ["decode", f["mdlc"], "-o", out_dir / "o.npz", "--latents"],
             "train": ["train", "toy:n=3000,n_features=24,d=12,l0=2", "--arch", "topk", "--width", 512, "--k", 2,
                       "--epochs", 1, "-o", out_dir / "sae"]}
    out = {}
    for name, args in cases.items():
        r = mdlcodec(*args, preexec_fn=limit)
        left = sorted(p.name for p in out_dir.iterdir())
        out[name] = ("ok" if one_line(r, Path(str(args[args.index("-o") + 1])).name) and not left
                     else f"stderr {r.stderr.strip()[-200:]!r}, left {left}")
        for p in out_dir.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return out


def inputs(f: dict, root: Path) -> dict[str, str]:
    out = {}
    for split in ("test", "train"):
        for data, target in ((f["x"], f["x"]), (f"{f['npz']}:acts", f["npz"])):
            before = target.read_bytes()
            r = mdlcodec("encode", data, "-m", f["model"], "-o", target, "--split", split, "--force")
            out[f"encode {Path(str(data)).name} --split {split} -o itself"] = \
                "ok" if target.read_bytes() == before and one_line(r, "refusing") else "input changed"
    for name in (WEIGHTS_FILE, "codec.safetensors", CFG_FILE):
        before = (f["model"] / name).read_bytes()
        r = mdlcodec("decode", f["mdlc"], "-m", f["model"], "-o", f["model"] / name, "--force")
        out[f"decode -o MODEL/{name}"] = "ok" if (f["model"] / name).read_bytes() == before and one_line(r) else "input changed"
    return out


def hostile_json(f: dict, root: Path) -> dict[str, str]:
    attacks = {"5,000-digit integer": '{"d_in": ' + "9" * 5000 + "}", "100,000-deep": "[" * 100_000 + "]" * 100_000,
               "NaN": '{"d_in": NaN}', "duplicate key": '{"d_in": 1, "d_in": 2}'}
    out = {}
    for name, text in attacks.items():
        m = root / "jmodel"
        shutil.copytree(f["model"], m, dirs_exist_ok=True)
        (m / CFG_FILE).write_text(text)
        out[f"{CFG_FILE}: {name}"] = "ok" if one_line(mdlcodec("encode", f["x"], "-m", m, "-o", root / "j.mdlc")) else "traceback"
        shards = root / "jshards"
        shards.mkdir(exist_ok=True)
        (shards / "manifest.json").write_text(text)
        out[f"manifest.json: {name}"] = "ok" if one_line(mdlcodec("encode", shards, "-m", f["model"], "-o", root / "j.mdlc")) else "traceback"
    return out


def fifos(f: dict, root: Path) -> dict[str, str]:
    out = {}
    for name in ("codec.safetensors", CFG_FILE, WEIGHTS_FILE):
        m = root / f"fifo-{name}"
        shutil.copytree(f["model"], m)
        (m / name).unlink()
        os.mkfifo(m / name)
        try:
            r = mdlcodec("encode", f["x"], "-m", m, "-o", root / "f.mdlc", timeout=10)
            out[f"FIFO as {name}"] = "ok" if one_line(r) else "not one line"
        except subprocess.TimeoutExpired:
            out[f"FIFO as {name}"] = "hang"
    shards = root / "fifo-shards"
    shards.mkdir()
    os.mkfifo(shards / "manifest.json")
    try:
        out["FIFO as manifest.json"] = "ok" if one_line(mdlcodec("encode", shards, "-m", f["model"], "-o", root / "f.mdlc",
                                                                 timeout=10)) else "not one line"
    except subprocess.TimeoutExpired:
        out["FIFO as manifest.json"] = "hang"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="kills and races (default 20 each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="bench/results/fuzz_environment.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="fuzz_env."))
    t0 = time.time()
    try:
        f = setup(root)
        results: dict = {"kill -9": {}, "two writers": {}}
        for i in range(args.repeat):
            d = root / f"k{i}"
            d.mkdir()
            results["kill -9"][i] = kill9(f, d, rng)
            d = root / f"w{i}"
            d.mkdir()
            results["two writers"][i] = writers(f, d)
            print(f"{i + 1}/{args.repeat}: {results['kill -9'][i]}, {results['two writers'][i]}", file=sys.stderr)
        d = root / "os"
        d.mkdir()
        results["os errors"] = os_errors(f, d)
        results["inputs"] = inputs(f, root)
        results["json"] = hostile_json(f, root)
        results["not files"] = fifos(f, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return write_report("fuzz_environment", results, ("ok", "finished before the kill"), t0, args.output)


def write_report(bench: str, results: dict[str, dict[str, str]], ok: tuple[str, ...], t0: float, output: str,
                 **extra) -> int:
    """Counts of each class's outcomes, its failures (outcomes not in ``ok``), the command, seconds since
    t0 and the machine, as JSON on stdout and in ``output`` ('-': stdout only); the exit status (1 if any failed)."""
    counts = {k: {o: sum(1 for v in r.values() if v == o) for o in set(r.values())} for k, r in results.items()}
    failures = {k: {c: v for c, v in r.items() if v not in ok} for k, r in results.items()}
    n_fail = sum(len(v) for v in failures.values())
    report = {"command": f"python bench/{bench}.py " + " ".join(sys.argv[1:]), "seconds": round(time.time() - t0, 1),
              "counts": counts, "failures": n_fail, "failure_cases": failures, **extra,
              "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                          "load": os.getloadavg()}}
    text = json.dumps(report, indent=1)
    if output != "-":
        Path(output).write_text(text + "\n")
    print(text)
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
