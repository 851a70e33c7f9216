"""Issue 29's attacks on the commands, the model folders and the Python API, the sibling of
bench/fuzz_codec.py (which crafts files: classes 2 to 5) and bench/fuzz_environment.py: each class
below is attacked through the real `mdlcodec` command in a subprocess (class 9 through the Python
API in this process), and every outcome is counted.

    python bench/fuzz_surfaces.py                  # every class, 5 concurrent measure runs (about 10 min)
    python bench/fuzz_surfaces.py --classes 7,10   # some classes

Classes and what counts as a failure:
  1  model folders that run code: `harvest` of a folder whose config.json (unknown model_type) or
     tokenizer_config.json has an auto_map naming a module in the folder, with `y` lines on stdin:
     the module ran (code executed), transformers' prompt shown, a traceback, not one line, or stdout
     that is not one JSON object
  6  harvest reads whole files: `harvest --tokens 100` of one 10 MB paragraph: peak memory (the
     process's maximum resident set) over 1.25 x that of the same command on 1 KB of text, or over 10 s
     more than it
  7  spill files: `decode --latents` under a file-size limit (3 sizes) and on SIGQUIT, SIGUSR1,
     SIGALRM (SIGTERM, SIGINT, SIGHUP beside them): a file left beside the output, a traceback, not one line
  8  numbers that are not numbers: zero-variance data (measure, info --against), a 1e7 mean (measure:
     PCA), one row (info --against), constant data (train --json, train --max-fvu), 1e30 values
     (measure --json): a traceback, NaN or Infinity in --json, "nan" printed, or an FVU over 1e6
  9  the Python API's edges: an SAE in bfloat16 or float16, Codec.fit with step 0, NaN, -1, a step
     array of the wrong length, no rows; sparse, meta, nested tensors; a SAEBench topk object without
     k, an object without cfg; complex, bool-tensor, timedelta64 inputs, max_fvu=True; run_eval with
     two SAEs under one name, k_values [0] or [-1], a fractional num_bins, a NaN or negative
     threshold, a release named ../x: an error that is not a MdlcodecError (untyped), or a call that
     goes on (accepted; with a warning, accepted too) where it must refuse, or a file written outside
     output_path
  10 the smaller ones: near-duplicate tolerances (--max-fvu 0.1,0.1000001 -o DIR), two `measure -o DIR`
     at once (--repeat times), 245- and 250-character output names (encode, decode --latents, train
     -o), a dictionary_learning k of 10**6 for width 384: not one line, both runs exiting 0, a legal
     name refused, a wrong k imported
Writes bench/results/fuzz_surfaces.json; exits 1 if any case failed. Classes 1, 6, 8 and 9 need
transformers and SmolLM2-135M (class 1 and 6: --model, default ../main/runs/smollm2-135m or
$MDLCODEC_SMOLLM2) and are skipped, saying so, without them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CMD = [sys.executable, "-m", "mdlcodec"]
TOY = "toy:n=3000,n_features=24,d=12,l0=2"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def mdlcodec(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV, **kw)


def one_line(r: subprocess.CompletedProcess | tuple, needle: str = "") -> bool:
    code, err = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    lines = [ln for ln in err.strip().splitlines() if ln]
    return code not in (0, None) and "Traceback" not in err and len(lines) == 1 and needle in lines[0]


def strict_json(text: str):
    """The one JSON object of text, or None if it is not one or holds NaN or Infinity."""
    def refuse(token):
        raise ValueError(token)
    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return None


def with_rusage(args: list, timeout: float = 900, **kw) -> tuple[int | None, str, str, float, float]:
    """Run args; (exit status or None if killed for the timeout, stdout, stderr, peak resident MiB, seconds)."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    t0 = time.time()
    p = subprocess.Popen([str(a) for a in args], stdout=out, stderr=err, text=True, env=ENV, **kw)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            status = None
            break
        time.sleep(0.05)
    p.returncode = 0  # reaped here
    out.seek(0)
    err.seek(0)
    code = None if status is None else os.waitstatus_to_exitcode(status)
    return code, out.read(), err.read(), usage.ru_maxrss / 1024, time.time() - t0


def setup(root: Path) -> dict:
    model = root / "model"
    r = mdlcodec("train", TOY, "--arch", "batchtopk", "--width", 24, "--k", 2, "--epochs", 2, "-o", model)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(0).normal(size=(600, 12)).astype(np.float32)
    np.save(root / "x.npy", x)
    assert mdlcodec("encode", root / "x.npy", "-m", model, "-o", root / "x.mdlc", "--embed-model",
                    "--split", "all").returncode == 0
    return {"model": model, "x": root / "x.npy", "mdlc": root / "x.mdlc"}


# -- 1 and 6: harvest ------------------------------------------------------------------------------

EVIL = """from pathlib import Path
Path(MARKER).write_text("code from the model folder ran")  # transformers runs a copy: an absolute path
from transformers import PretrainedConfig, PreTrainedModel
class EvilConfig(PretrainedConfig):
    model_type = "evil"
class EvilModel(PreTrainedModel):
    config_class = EvilConfig
"""


def _hf_copy(src: Path, dst: Path) -> None:
    """A model folder like src: its small files copied, its weights linked."""
    dst.mkdir()
    for p in src.iterdir():
        if p.suffix == ".safetensors" or p.stat().st_size > 50 << 20:
            (dst / p.name).symlink_to(p.resolve())
        elif p.is_file():
            shutil.copy(p, dst / p.name)


def runs_code(hf: Path, root: Path) -> dict[str, str]:
    text = root / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 20)
    out = {}
    for name in ("config.json auto_map, unknown model_type", "tokenizer_config.json auto_map"):
        m = root / f"evil-{len(out)}"
        _hf_copy(hf, m)
        marker = m / "RAN"
        (m / "evil.py").write_text(EVIL.replace("MARKER", repr(str(marker))))
        if name.startswith("config"):
            cfg = json.loads((m / "config.json").read_text())
            cfg.update(model_type="evil", architectures=["EvilModel"],
                       auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
            (m / "config.json").write_text(json.dumps(cfg))
        else:
            tc = json.loads((m / "tokenizer_config.json").read_text())
            tc["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
            (m / "tokenizer_config.json").write_text(json.dumps(tc))
            (m / "evil.py").write_text(EVIL.replace("MARKER", repr(str(marker))) + "class EvilTokenizer:\n    pass\n")
        try:
            r = subprocess.run([*CMD, "harvest", str(m), "--layer", "1", "--text", str(text), "--tokens", "100",
                                "-o", str(root / f"acts-{len(out)}"), "--json"], input="y\n" * 10_000,
                               capture_output=True, text=True, timeout=300, env=ENV)
        except subprocess.TimeoutExpired:
            out[name] = "hang"
            continue
        good = r.returncode == 0 and strict_json(r.stdout) is not None or one_line(r)
        prompt = "[y/N]" in r.stdout + r.stderr
        out[name] = ("code executed" if marker.exists() else "prompted" if prompt else
                     "ok" if good else f"stderr {r.stderr.strip()[-200:]!r}")
    return out


def whole_files(hf: Path, root: Path) -> dict[str, str]:
    small, big = root / "small.txt", root / "big.txt"
    small.write_text("The quick brown fox jumps over the lazy dog. " * 22)
    words = np.random.default_rng(0).choice(["alpha", "beta", "gamma", "delta", "the", "of", "fox"], 2_000_000)
    big.write_text(" ".join(words.tolist())[:10_000_000])  # one 10 MB paragraph
    runs = {}
    for name, text in (("1 KB", small), ("10 MB paragraph", big)):
        code, _, err, mib, secs = with_rusage([*CMD, "harvest", hf, "--layer", "1", "--text", text, "--tokens", 100,
                                               "-o", root / f"h-{name[:2]}"], timeout=600)
        runs[name] = (code, mib, secs, err.strip()[-200:])
    (c0, m0, s0, _), (c1, m1, s1, e1) = runs["1 KB"], runs["10 MB paragraph"]
    figure = f"{m1:.0f} MiB and {s1:.0f} s against {m0:.0f} MiB and {s0:.0f} s for 1 KB"
    if c1 is None:
        return {"10 MB paragraph, --tokens 100": f"hang ({figure})"}
    ok = c0 == 0 and c1 == 0 and m1 <= 1.25 * m0 and s1 <= s0 + 10
    return {"10 MB paragraph, --tokens 100": "ok" if ok else f"memory or time: {figure} (exit {c1}: {e1!r})",
            "_figures": figure}


# -- 7: spill files ---------------------------------------------------------------------------------


def spills(root: Path) -> dict[str, str]:
    from tests.codec import fuzz

    small = root / "small.mdlc"
    small.write_bytes(fuzz.bomb(fuzz.free_codec(8, 16, True), 16, 2000))
    slow = root / "slow.mdlc"
    slow.write_bytes(fuzz.bomb(fuzz.free_codec(8, 2, False), 1 << 20, 48))
    out = {}
    for limit in (100, 20_000, 1_000_000):
        d = root / f"lim{limit}"
        d.mkdir()
        r = subprocess.run([*CMD, "decode", str(small), "-o", str(d / "z.npz"), "--latents"], capture_output=True,
                           text=True, env=ENV, timeout=600,
                           preexec_fn=lambda limit=limit: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        left = sorted(p.name for p in d.iterdir())
        out[f"ulimit -f {limit} bytes"] = "ok" if one_line(r, "z.npz") and not left else f"left {left}: {r.stderr[-200:]!r}"
    for sig in ("SIGQUIT", "SIGUSR1", "SIGALRM", "SIGTERM", "SIGINT", "SIGHUP"):
        d = root / sig
        d.mkdir()
        p = subprocess.Popen([*CMD, "decode", str(slow), "-o", str(d / "z.npz"), "--latents"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None and not any(".npz.indptr" in q.name for q in d.iterdir()):
            time.sleep(0.02)
        time.sleep(0.2)
        if p.poll() is not None:
            out[sig] = "finished before the signal"
            continue
        p.send_signal(getattr(signal, sig))
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out[sig] = "hang"
            continue
        left = sorted(q.name for q in d.iterdir())
        out[sig] = "ok" if one_line((p.returncode, err)) and not left else f"left {left}, exit {p.returncode}: {err[-200:]!r}"
    return out


# -- 8: numbers that are not numbers --------------------------------------------------------------------


def numbers(f: dict, root: Path) -> dict[str, str]:
    const = root / "const.npy"
    np.save(const, np.full((1000, 12), 0.5, np.float32))
    shifted = root / "shifted.npy"
    np.save(shifted, np.random.default_rng(1).normal(size=(2000, 12)).astype(np.float32) + np.float32(1e7))
    huge = root / "huge.npy"
    np.save(huge, np.random.default_rng(2).normal(size=(1000, 12)).astype(np.float32) * np.float32(1e30))
    one = root / "one.npy"
    np.save(one, np.load(f["x"])[:1])
    assert mdlcodec("encode", one, "-m", f["model"], "-o", root / "one.mdlc", "--split", "all").returncode == 0
    assert mdlcodec("encode", const, "-m", f["model"], "-o", root / "const.mdlc", "--split", "all").returncode == 0
    cases = {"measure zero-variance --json": ["measure", f["model"], const, "--max-fvu", "0.5", "--json"],
             "info --against zero-variance --json": ["info", root / "const.mdlc", "-m", f["model"], "--against", const,
                                                     "--split", "all", "--json"],
             "measure a 1e7 mean --json": ["measure", f["model"], shifted, "--max-fvu", "0.5", "--json"],
             "info --against one row --json": ["info", root / "one.mdlc", "-m", f["model"], "--against", one,
                                               "--split", "all", "--json"],
             "train constant data --json": ["train", const, "--arch", "topk", "--width", 8, "--k", 2, "--epochs", 1,
                                            "-o", root / "tc", "--json"],
             "train constant data --max-fvu 0.1": ["train", const, "--arch", "topk", "--width", 8, "--k", 2,
                                                   "--epochs", 1, "-o", root / "tf", "--max-fvu", "0.1"],
             "measure 1e30 values --json": ["measure", f["model"], huge, "--max-fvu", "0.5", "--json"]}
    out = {}
    for name, args in cases.items():
        r = mdlcodec(*args)
        if "Traceback" in r.stderr:
            out[name] = "traceback: " + r.stderr.strip().splitlines()[-1][:150]
        elif r.returncode != 0:
            out[name] = "ok" if one_line(r) else f"not one line: {r.stderr[-200:]!r}"
        elif "--json" in args:
            obj = strict_json(r.stdout)
            fvu = obj.get("fvu") if isinstance(obj, dict) else None
            out[name] = ("NaN or Infinity in --json" if obj is None else
                         f"FVU {fvu:g}" if isinstance(fvu, (int, float)) and fvu > 1e6 else "ok")
        else:
            text = (r.stdout + r.stderr).lower()
            out[name] = "nan printed" if " nan" in text or "fvu nan" in text else "ok"
    return out


# -- 9: the Python API's edges ------------------------------------------------------------------------


class _Alarm(Exception):
    pass


def api(f: dict, root: Path) -> dict[str, str]:
    import types

    import torch

    import mdlcodec as m
    from mdlcodec.core.errors import MdlcodecError
    from mdlcodec.models import load_sae

    torch.set_num_threads(1)
    sae = load_sae(f["model"])
    x = np.load(f["x"])
    t = {k: getattr(sae, k).detach().clone() for k in ("W_enc", "b_enc", "W_dec", "b_dec")}

    def bench_obj(architecture: str, **extra):
        return types.SimpleNamespace(**t, cfg=types.SimpleNamespace(architecture=architecture, d_in=12, d_sae=24),
                                     **extra)

    out_dir = root / "evals"
    cases = {  # name: (call, success allowed)
        "bfloat16 SAE": (lambda: m.measure(load_sae(f["model"]).to(torch.bfloat16), x, max_fvu=0.8), True),
        "float16 SAE": (lambda: m.measure(load_sae(f["model"]).to(torch.float16), x, max_fvu=0.8), True),
        "Codec.fit step 0": (lambda: m.Codec.fit(sae, x, step=0.0), False),
        "Codec.fit step NaN": (lambda: m.Codec.fit(sae, x, step=float("nan")), False),
        "Codec.fit step -1": (lambda: m.Codec.fit(sae, x, step=-1.0), False),
        "Codec.fit steps of the wrong length": (lambda: m.Codec.fit(sae, x, step=np.ones(3, np.float32)), False),
        "Codec.fit no rows": (lambda: m.Codec.fit(sae, x[:0], step=0.1), False),
        "sparse tensor": (lambda: m.measure(sae, torch.from_numpy(x).to_sparse(), max_fvu=0.8), False),
        "meta tensor": (lambda: m.measure(sae, torch.empty((600, 12), device="meta"), max_fvu=0.8), False),
        "nested tensor": (lambda: m.measure(sae, torch.nested.nested_tensor([torch.from_numpy(x[:300]),
                                                                            torch.from_numpy(x[300:])]),
                                            max_fvu=0.8), False),
        "SAEBench topk without k": (lambda: m.measure(bench_obj("topk"), x, max_fvu=0.8), False),
        "object without cfg": (lambda: m.measure(types.SimpleNamespace(**t), x, max_fvu=0.8), False),
        "complex input": (lambda: m.measure(sae, x.astype(np.complex64), max_fvu=0.8), False),
        "torch bool tensor": (lambda: m.measure(sae, torch.from_numpy(x > 0), max_fvu=0.8), False),
        "timedelta64 array": (lambda: m.measure(sae, x.astype("timedelta64[s]"), max_fvu=0.8), False),
        "max_fvu=True": (lambda: m.measure(sae, x, max_fvu=True), False),
        "run_eval: two SAEs under one name": (
            lambda: _two_files(m.run_eval(m.MDLEvalConfig(activations=x, k_values=[2], num_bins_values=[4],
                                                          max_fvu=0.8), [("a", sae), ("a", sae)], "cpu",
                                          out_dir / "two"), out_dir / "two"), False),
        "run_eval: k_values [0]": (lambda: _eval(m, x, sae, out_dir / "k0", k_values=[0]), False),
        "run_eval: k_values [-1]": (lambda: _eval(m, x, sae, out_dir / "km", k_values=[-1]), False),
        "run_eval: num_bins 2.5": (lambda: _eval(m, x, sae, out_dir / "nb", num_bins_values=[2.5]), False),
        "run_eval: threshold NaN": (lambda: _eval(m, x, sae, out_dir / "tn", mse_epsilon_threshold=float("nan"),
                                                  max_fvu=None), False),
        "run_eval: threshold -1": (lambda: _eval(m, x, sae, out_dir / "tm", mse_epsilon_threshold=-1.0,
                                                 max_fvu=None), False),
        "run_eval: release ../x": (lambda: _eval(m, x, sae, out_dir / "rel", name="../x"), False),
    }
    out = {}
    for name, (call, may_succeed) in cases.items():
        before = set(root.rglob("*"))
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(120)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                call()
            outcome = ("ok" if may_succeed else "accepted" + (" with a warning" if caught else ""))
        except _Alarm:
            outcome = "hang"
        except _Dropped:
            outcome = "accepted: one file, the second SAE dropped"
        except MdlcodecError:
            outcome = "ok"
        except Exception as e:  # noqa: BLE001 - what this class looks for
            outcome = f"untyped: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        own = out_dir / _EVAL_DIRS.get(name, "")  # a run_eval case's output_path
        outside = [p for p in set(root.rglob("*")) - before
                   if name in _EVAL_DIRS and own not in p.parents and p != own and p not in own.parents]
        if outside:
            outcome = f"wrote outside output_path: {[str(p.relative_to(root)) for p in outside][:3]}"
        out[name] = outcome
    return out


_EVAL_DIRS = {"run_eval: two SAEs under one name": "two", "run_eval: k_values [0]": "k0", "run_eval: k_values [-1]": "km",
              "run_eval: num_bins 2.5": "nb", "run_eval: threshold NaN": "tn", "run_eval: threshold -1": "tm",
              "run_eval: release ../x": "rel"}
"""The output_path of each run_eval case under OUT/evals: nothing may be written outside it."""


def _alarm(signum, frame):
    raise _Alarm()


def _eval(m, x, sae, path: Path, name: str = "toy", **config):
    base = {"activations": x, "k_values": [2], "num_bins_values": [4], "max_fvu": 0.8}
    return m.run_eval(m.MDLEvalConfig(**{**base, **config}), [(name, sae)], "cpu", path)


class _Dropped(Exception):
    pass


def _two_files(result, path: Path):
    """run_eval's two SAEs under one name: fine only if both are there (two files)."""
    if len([p for p in path.rglob("*.json")]) < 2:
        raise _Dropped()
    return result


# -- 10: the smaller ones ----------------------------------------------------------------------------


def smaller(f: dict, root: Path, repeat: int) -> dict[str, str]:
    out = {}
    r = mdlcodec("measure", f["model"], TOY, "--max-fvu", "0.1,0.1000001", "-o", root / "dup")
    files = sorted(p.name for p in (root / "dup").glob("*.mdlc")) if (root / "dup").exists() else []
    out["near-duplicate tolerances"] = "ok" if one_line(r) else f"exit {r.returncode}, files {files}"
    for i in range(repeat):
        d = root / f"race{i}"
        models = []
        for name in ("a", "b"):
            shutil.copytree(f["model"], d / name)
            models.append(d / name)
        ps = [subprocess.Popen([*CMD, "measure", str(mm), TOY, "--max-fvu", "0.8,0.5", "-o", str(d / "out")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for mm in models]
        done = [(p.wait(timeout=900), p.stderr.read()) for p in ps]
        codes = sorted(c for c, _ in done)
        loser = [e for c, e in done if c != 0]
        out[f"two measure -o DIR at once, {i + 1}"] = ("ok" if codes == [0, 1] and one_line((1, loser[0]))
                                                       else f"exit codes {codes}")
    np.save(root / "s.npy", np.load(f["x"])[:50])
    long = root / ("x" * 240 + ".mdlc")
    cases = {"encode -o a 245-character name": ["encode", root / "s.npy", "-m", f["model"], "-o", long, "--embed-model",
                                                "--split", "all"],
             "decode --latents -o a 245-character name": ["decode", long, "-o", root / ("z" * 241 + ".npz"), "--latents"],
             "train -o a 250-character folder": ["train", TOY, "--arch", "topk", "--width", 16, "--k", 2, "--epochs", 1,
                                                 "-o", root / ("m" * 250)]}
    for name, args in cases.items():
        r = mdlcodec(*args)
        out[name] = "ok" if r.returncode == 0 else f"refused: {r.stderr.strip()[-150:]!r}"
    import torch

    from tests.models import peer_helpers as ph

    for name, trainer, state in (("trainer.k 10^6", {"k": 10**6}, {}),
                                 ("ae.pt k 10^6", {}, {"k": torch.tensor(10**6, dtype=torch.int32)})):
        d = root / f"dl-{len(out)}"
        ph.write_dictionary_learning(d, "BatchTopKSAE", trainer=trainer, state=state)
        r = mdlcodec("import", d, "-o", root / f"imp-{len(out)}")
        out[f"dictionary_learning {name}"] = ("ok" if one_line(r, "k") and "1000000" in r.stderr
                                              else f"exit {r.returncode}: {r.stderr.strip()[-150:]!r}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default="1,6,7,8,9,10", help="which classes (default all: 1,6,7,8,9,10)")
    ap.add_argument("--repeat", type=int, default=5, help="concurrent measure runs of class 10 (default 5)")
    ap.add_argument("--model", type=Path, default=Path(os.environ.get("MDLCODEC_SMOLLM2", ROOT.parent / "main" / "runs"
                                                                                        / "smollm2-135m")),
                    help="a Hugging Face model folder for classes 1 and 6")
    ap.add_argument("-o", "--output", default="bench/results/fuzz_surfaces.json")
    args = ap.parse_args()
    wanted = {int(c) for c in args.classes.split(",")}
    root = Path(tempfile.mkdtemp(prefix="fuzz_surfaces."))
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    t0 = time.time()
    try:
        f = setup(root)
        hf_ok = (args.model / "config.json").is_file()
        try:
            import transformers  # noqa: F401
        except ImportError:
            hf_ok = False
        for c, name, run in ((1, "1 model folders that run code", lambda d: runs_code(args.model, d)),
                             (6, "6 harvest reads whole files", lambda d: whole_files(args.model, d)),
                             (7, "7 spill files", spills),
                             (8, "8 numbers that are not numbers", lambda d: numbers(f, d)),
                             (9, "9 the Python API's edges", lambda d: api(f, d)),
                             (10, "10 the smaller ones", lambda d: smaller(f, d, args.repeat))):
            if c not in wanted:
                continue
            if c in (1, 6) and not hf_ok:
                skipped[name] = f"no transformers or no model folder at {args.model}"
                continue
            d = root / f"class{c}"
            d.mkdir()
            t = time.time()
            results[name] = run(d)
            print(f"{name}: {time.time() - t:.0f} s: {json.dumps(results[name])}", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = {k: r.pop("_figures") for k, r in results.items() if "_figures" in r}
    from bench.fuzz_environment import write_report

    return write_report("fuzz_surfaces", results, ("ok", "finished before the signal"), t0, args.output,
                        figures=figures, skipped=skipped)

if __name__ == "__main__":
    sys.exit(main())
