"""What a model's feature hierarchy says: its strongest parent-child pairs, as JSON and, for image
data, as decoder rows side by side (the `mdlcodec hierarchy` command's work)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mdlcodec.codec import Codec
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.codec.entropy.hierarchy import Hierarchy, chow_liu
from mdlcodec.core.atomic import save_figure


def model_hierarchy(codec: Codec, train_x: np.ndarray) -> tuple[Hierarchy, dict]:
    """The codec's stored hierarchy (a tree SAE's forest, or a fitted Chow-Liu forest), else a Chow-Liu
    forest learned now, both counted on the quantised codes of train_x [n, d_in]. Returns it with its
    JSON export: kind, samples, parents [d_sae], and the edges strongest first (Hierarchy.edges)."""
    codes = codec.latents(train_x, DEFAULT_CHUNK)
    stored = codec.entropy_model.hierarchy
    h = Hierarchy.count(codes, stored.parents, stored.kind) if stored is not None else chow_liu(codes)
    active = np.bincount(codes.indices, minlength=codes.d_sae)
    return h, {"kind": h.kind, "source": "stored" if stored is not None else "chow-liu (learned now)",
               "n_samples": codes.n, "d_sae": codes.d_sae, "edges_count": h.n_edges,
               "table_bits": h.table_bits(codes.n), "parents": h.parents.tolist(),
               "edges": h.edges(active, codes.n)}


def image_shape(d_in: int) -> tuple[int, int] | None:
    """(s, s) when d_in is a square (image data such as MNIST), else None."""
    s = math.isqrt(d_in)
    return (s, s) if s * s == d_in else None


def plot_pairs(w_dec: np.ndarray, edges: list[dict], shape: tuple[int, int], path: str | Path, top: int = 20) -> Path:
    """Parent and child decoder rows (W_dec [d_sae, d_in]) of the ``top`` strongest edges as images,
    one pair per row: parent left, child right, on one colour scale shown by the colour bar (red
    positive, blue negative); each child's title says whether it co-occurs with or excludes its parent."""
    pairs = edges[:top]
    rows = [w_dec[f] for e in pairs for f in (e["parent"], e["child"])]
    lim = float(max((np.abs(r).max() for r in rows), default=1.0)) or 1.0
    fig = Figure(figsize=(3.6, 1.3 * max(len(pairs), 1) + 0.4))
    axes = fig.subplots(max(len(pairs), 1), 2, squeeze=False)
    image = None
    for i, e in enumerate(pairs):
        for j, (f, label) in enumerate(((e["parent"], "parent"), (e["child"], "child"))):
            ax = axes[i, j]
            image = ax.imshow(w_dec[f].reshape(shape), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label} {f}" + (f"  MI {e['mutual_information_bits']:.3f}, {e['relation']}" if j else ""),
                         fontsize=6)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=min(1.0, 4.0 / max(len(pairs), 1)), label="decoder weight")
    return save_figure(fig, path, 90)
