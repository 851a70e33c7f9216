"""Measuring SAEs, the research use: how many bits per sample (per token) each given SAE takes to
explain a dataset's test split at one or several tolerances, coded into real files and read back,
beside PCA transform coding (``compare.measure_saes``, the ``measure`` command; one SAE or PCA at a
tolerance: ``measure.py``); the notebook's ``mdlcodec.measure`` (``api.py``); SAEBench's MDL eval
as a drop-in (``saebench.py``); FVU over the tokens below a norm quantile (``tokens.py``); the
rate-distortion plot (``plots.py``). May import core, data, theory, models, codec, baselines and
workflow; the selection sweep (``selection``) imports this package, never the reverse.

(The package is named ``measurement`` because ``mdlcodec.measure`` is the API's function.)

The names below are imported on first use, so that importing one module of the package
(``measurement.tokens`` for the CLI's defaults) does not load the rest."""

_LAZY = {"feature_density": "measure", "measure_codec": "measure", "measure_pca": "measure", "measure_sae": "measure",
         "measure_saes": "compare", "markdown_table": "compare", "measure": "api", "run_eval": "saebench",
         "MDLEvalConfig": "saebench"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"mdlcodec.measurement.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mdlcodec.measurement' has no attribute {name!r}")
