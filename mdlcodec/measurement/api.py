"""The package's Python entry point for a notebook: measure SAE objects on activations in memory.

    import mdlcodec
    result = mdlcodec.measure(sae, acts, max_fvu=0.1)       # sae: any SAE object (models.peers.objects)
    result = mdlcodec.measure({"16k": a, "65k": b}, acts, max_mse=0.02, rdo=True)
    curve = mdlcodec.measure(sae, acts, max_fvu=[0.05, 0.1, 0.2])  # rows tagged with their max_fvu
    result["rows"][0]["file_bits"]                           # bits per token of the shortest code

``acts``: a tensor or array [n, d] (or [..., d]), an iterable of batches, a dataset spec or shard
folder, or a Dataset (data.inmemory); in-memory rows are split as every command splits them (the
last n // 5 rows test). The result is ``mdlcodec measure --json``'s object (schema in
selection.compare), ``command`` naming the SAEs by their names here."""

from __future__ import annotations

from typing import Any

from mdlcodec.core.progress import Progress, quiet
from mdlcodec.data.inmemory import as_dataset
from mdlcodec.measurement.compare import measure_saes
from mdlcodec.measurement.tokens import DEFAULT_NORM_QUANTILE
from mdlcodec.models.peers import convert_object


def _named(saes: Any) -> list[tuple[str, Any]]:
    """(name, SAE object) pairs: a dict {name: SAE} (not itself an SAE's dict of tensors), a list, or one SAE."""
    if isinstance(saes, dict) and "W_enc" not in saes:
        return list(saes.items())
    if isinstance(saes, (list, tuple)):
        return [(f"sae{i}", s) for i, s in enumerate(saes)]
    return [(type(saes).__name__, saes)]


def measure(saes: Any, activations: Any, max_fvu: float | list[float] | None = None,
            max_mse: float | list[float] | None = None, *, pca: bool = True, rdo: bool = False, stored: bool = True,
            norm_quantile: float = DEFAULT_NORM_QUANTILE, device: str = "cpu", progress: Progress = quiet) -> dict:
    """Bits per sample (per token) of each SAE on the test split of ``activations`` at one tolerance
    or several (exactly one of max_fvu, max_mse: a number or a list), beside PCA transform coding
    (``pca``) and stored floats (``stored``); with ``rdo`` each SAE's optimised code too; FVU also over
    the test tokens whose norm is at most the ``norm_quantile`` quantile. ``saes``: one SAE object, a list, or a
    dict {name: SAE}; each is converted once (models.peers.convert_object) and left as it was."""
    named = [(name, convert_object(obj).sae) for name, obj in _named(saes)]
    ds = as_dataset(activations)
    result = measure_saes([(name, "in memory", sae) for name, sae in named], ds, max_mse, max_fvu, pca=pca,
                          device=device, progress=progress, stored=stored, rdo=rdo, norm_quantile=norm_quantile)
    result["command"] = {"models": [name for name, _ in named], "data": ds.spec, "max_fvu": max_fvu,
                         "max_mse": max_mse, "pca": pca, "rdo": rdo, "norm_quantile": norm_quantile}
    return result
