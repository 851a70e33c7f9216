"""One dataset spec string for the whole CLI, and a description of a loaded dataset.

Spec syntax:
- `toy` or `toy:key=value,...`: synthetic toy model of superposition (mdlcodec.data.toy); keys are
  the ToyConfig fields (n_features, d, l0, alpha, hierarchy, correlated, rho, noise, n, seed) and
  `preset=NAME` or a bare preset name (`toy:lm`: d=768, 4096 features, L0 64) that other keys override.
- `mnist` (folder $MDLCODEC_MNIST, else ../shared/data/mnist from the current directory) or
  `mnist:PATH`; append `,download=1` (`mnist:PATH,download=1`) to fetch MNIST with torchvision
  when the folder lacks it.
- a folder holding a manifest.json: activation shards (mdlcodec.data.shards; `mdlcodec harvest`
  writes them), read shard by shard; the split is over the shards' rows in order.
- anything else is a file: PATH.npy, PATH.npz, PATH.safetensors, PATH.pt, the last three
  optionally as PATH:KEY to pick one array of several.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdlcodec.core.errors import DataError
from mdlcodec.data.dataset import Dataset, array_stats
from mdlcodec.data.files import SUFFIXES, load_activation_dataset, load_activations, parse_file_spec
from mdlcodec.data.mnist import load_mnist
from mdlcodec.data.shards import is_shard_folder, load_shard_dataset, open_shards, read_manifest
from mdlcodec.data.toy import make_toy, parse_toy_options


def _mnist_args(spec: str) -> tuple[str | None, bool]:
    """(folder or None for the default, download) of a spec ``mnist`` or ``mnist:PATH[,download=0|1]``."""
    path_parts, download = [], False
    for part in spec[len("mnist:"):].split(",") if spec != "mnist" else []:
        key, sep, val = part.partition("=")
        if sep and key.strip() == "download":
            if val.strip() not in ("0", "1"):
                raise DataError(f"mnist: download={val.strip()!r}; expected 0 or 1")
            download = val.strip() == "1"
        else:
            path_parts.append(part)
    return ",".join(path_parts) or None, download


def _mnist(spec: str) -> Dataset:
    return load_mnist(*_mnist_args(spec), spec)


def load_dataset(spec: str) -> Dataset:
    """The dataset a spec string names (syntax in this module's docstring). Raises DataError with
    one line naming the spec, file or key and the problem."""
    spec = str(spec).strip()
    if spec == "toy" or spec.startswith("toy:"):
        return make_toy(parse_toy_options(spec[4:]), spec)
    if spec == "mnist" or spec.startswith("mnist:"):
        return _mnist(spec)
    if Path(spec).is_dir():
        return load_shard_dataset(spec)
    path, _ = parse_file_spec(spec)
    if not path.exists() and path.suffix.lower() not in SUFFIXES:
        raise DataError(f"unknown dataset spec '{spec}': expected toy[:key=value,...], mnist[:PATH], a shard "
                        f"folder, or an existing {'/'.join(SUFFIXES)} file")
    return load_activation_dataset(spec)


def spec_paths(spec: str) -> tuple[Path, ...]:
    """The files and folders a dataset spec reads, which no output may replace whatever split is
    read: the file of PATH[:KEY], a shard folder, the MNIST folder; none for toy."""
    spec = str(spec).strip()
    if spec == "toy" or spec.startswith("toy:"):
        return ()
    if spec == "mnist" or spec.startswith("mnist:"):
        from mdlcodec.data.mnist import mnist_dir_default

        folder, _ = _mnist_args(spec)
        return (Path(folder) if folder else mnist_dir_default(),)
    if Path(spec).is_dir():
        return (Path(spec),)
    return (parse_file_spec(spec)[0],)


SPLITS = ("all", "train", "test")


def load_rows(spec: str, split: str = "all") -> np.ndarray:
    """The rows [n, d] of a dataset spec that a command encodes or compares against: ``split`` "all"
    (every row: a file as it is, memory-mapped where it is a .npy, not converted and not yet checked
    for NaN/Inf; a shard folder as a lazy ShardedRows of the shards' dtype; MNIST's 10,000 images; all
    of a toy set), "train" or "test" (the fixed split; lazy views for a shard folder)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    spec = str(spec).strip()
    named = spec in ("toy", "mnist") or spec.startswith(("toy:", "mnist:"))
    if split == "all" and not named:
        return open_shards(spec) if Path(spec).is_dir() else load_activations(spec)
    ds = load_dataset(spec)
    if split == "all":
        return np.concatenate([ds.train, ds.test])
    return ds.train if split == "train" else ds.test


def describe(ds: Dataset) -> dict:
    """Figures about a dataset: sizes, dtype, and per split the value range, mean squared norm
    and total variance (sum over dimensions); for toy data also the number of true features, the
    expected L0 and the true entropy of the activity pattern (bits per sample)."""
    out = {"name": ds.name, "spec": ds.spec, "n_train": int(ds.train.shape[0]), "n_test": int(ds.test.shape[0]),
           "d": ds.d, "dtype": str(np.dtype(ds.train.dtype)), "image_shape": ds.image_shape,
           "train": array_stats(ds.train), "test": array_stats(ds.test)}
    if ds.truth is not None:
        t = ds.truth
        out["toy"] = {"true_features": int(len(t.probs)), "expected_l0": float(t.probs.sum()),
                      "true_entropy_bits_per_sample": t.entropy_bits_per_sample(),
                      "hierarchy_children": int((t.parents >= 0).sum()), "correlated_pairs": int(len(t.pairs))}
    if is_shard_folder(ds.spec):
        m = read_manifest(ds.spec)
        out["shards"] = {"count": len(m["shards"]), "shard_tokens": m["shard_tokens"], "stored_dtype": m["dtype"],
                         **{k: m[k] for k in ("model", "layer", "hook_point") if k in m}}
    return out
