"""Boolean features coded with the real codec: what the paper's toy figures share.

The toy figures (Figure 3, feature splitting: ``splitting.py``; Figure 5, hierarchy:
``hierarchy_figure.py``) compare hand-built dictionaries that explain the same boolean data. Each
dictionary is an mdlcodec ``Codec`` (decoder rows, per-feature quantiser steps, an entropy model fit
on a training set, and an encoder that maps x to the dictionary's latents exactly), so its
description length is measured from a real .mdlc file, not computed from a formula.

- ``exact_patterns``: n samples holding each boolean pattern in an exact number of copies, in a
  seeded random order, so measured bits compare with the formulas without sampling noise.
- ``dictionary_codec``: a Codec from decoder rows, steps and an encoder, its entropy model counted
  on training activations (optionally under a feature forest, ``codec.hierarchy.Hierarchy``).
- ``measure_codec``: encode a test set into one chunk, decode it back, and report payload, file
  and cross-entropy bits per sample, L0, MSE and whether the latents came back exactly.
- ``make_out_dir``: the output folder for the figures' JSON
  and markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser, payload_bits
from mdlcodec.codec.entropy.hierarchy import Hierarchy
from mdlcodec.core.errors import MdlcodecError


def exact_patterns(patterns, counts, n: int, seed: int) -> np.ndarray:
    """[n, m] bool: row pattern ``patterns[i]`` ([k, m] bool) repeated exactly ``counts[i]`` times, in
    the order given, the remaining rows all False, then shuffled by ``default_rng(seed).permutation(n)``.

    ValueError if the counts are negative or sum to more than n."""
    patterns = np.asarray(patterns, dtype=bool)
    counts = np.asarray(counts, dtype=np.int64)
    if patterns.ndim != 2 or counts.shape != (len(patterns),):
        raise ValueError(f"patterns must be [k, m] and counts [k], got {patterns.shape} and {counts.shape}")
    if np.any(counts < 0) or counts.sum() > n:
        raise ValueError(f"n = {n} is too small for pattern counts {counts.tolist()}")
    out = np.zeros((n, patterns.shape[1]), dtype=bool)
    out[:counts.sum()] = np.repeat(patterns, counts, axis=0)
    return out[np.random.default_rng(seed).permutation(n)]


def dictionary_codec(w_dec: np.ndarray, step: np.ndarray, encoder: Callable[[np.ndarray], np.ndarray],
                     train_x: np.ndarray, parents=None, kind: str = "tree") -> Codec:
    """A Codec whose decoder rows are ``w_dec`` [D, d] (zero bias, input scale 1), quantiser steps
    ``step`` [D], and entropy model counted on encoder(train_x); with ``parents`` [D] (-1: root) the
    activity is coded under that forest (``Hierarchy.count(codes, parents, kind)``), else flat."""
    q = Quantiser(np.asarray(step, np.float32))
    w_dec = np.asarray(w_dec, np.float32)
    codes = q.quantise(encoder(train_x))
    model = EntropyModel.fit(codes)
    if parents is not None:
        model = model.with_hierarchy(Hierarchy.count(codes, np.asarray(parents, np.int64), kind))
    return Codec(Decoder(w_dec, np.zeros(w_dec.shape[1], np.float32), 1.0), q, model, encoder)


@dataclass
class Measured:
    """One dictionary coding one test set: bits per sample measured from the file (payload: the ANS
    words; file: every byte), the cross-entropy (ideal code length under the tables), L0,
    reconstruction MSE, and whether decoding returned exactly the encoded latents."""

    payload_bits: float
    file_bits: float
    cross_entropy_bits: float
    l0: float
    mse: float
    exact: bool


def measure_codec(codec: Codec, test_x: np.ndarray) -> Measured:
    """Encode test_x [n, d] with ``codec`` (one chunk), read the file's payload, and decode it back."""
    n = len(test_x)
    data = codec.encode(test_x, chunk_size=max(n, 1))
    payload = payload_bits(data)
    codes = codec.latents(test_x)
    decoded = codec.decode_latents(data)
    x_hat = codec.reconstruct(decoded)
    return Measured(payload / n, 8 * len(data) / n, codec.chunk_coder.ideal_bits(codes)["total"] / n,
                    codes.nnz / n, float(np.mean((x_hat.astype(np.float64) - test_x) ** 2)), decoded == codes)


def measure_grid(point: Callable[[float, float], dict], xs: np.ndarray, ys: np.ndarray,
                 names: tuple[str, ...]) -> tuple[dict, np.ndarray, bool]:
    """Run ``point(x, y)`` (a dict with the source entropy and, per dictionary name, its Measured
    bits and the formula) over the grid. Returns ({"payload"|"cross_entropy"|"formula": {name: [len(ys),
    len(xs)]}} bits per sample, the source entropy [len(ys), len(xs)], whether every file decoded exactly)."""
    shape = (len(ys), len(xs))
    grids = {g: {k: np.full(shape, np.nan) for k in names} for g in ("payload", "cross_entropy", "formula")}
    entropy = np.full(shape, np.nan)
    exact = True
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            pt = point(float(x), float(y))
            entropy[j, i] = pt["source_entropy"]
            for k in names:
                grids["payload"][k][j, i] = pt[k]["payload_bits"]
                grids["cross_entropy"][k][j, i] = pt[k]["cross_entropy_bits"]
                grids["formula"][k][j, i] = pt["formula"][k]
                exact &= pt[k]["exact"]
    return grids, entropy, bool(exact)


def make_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, created with its parents if missing; MdlcodecError if it cannot be."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MdlcodecError(f"cannot create the output folder {out}: {e.strerror or e}") from None
    return out
