"""MDL model selection of SAEs (the paper's Appendix C): calibrate k per width at a test-MSE
tolerance, quantise as coarsely as the tolerance allows, measure description length from real
files (``measurement``), select the shortest, and draw the paper's Figure 2. Uses the codec and the
measurement, never the reverse; may import core, data, theory, models, codec, baselines, workflow
and measurement, through their public names.

The names below are imported on first use (as the package's own ``mdlcodec.__getattr__`` does), so
that importing one module of the package does not load the sweep, its plots and matplotlib."""

_LAZY = {"SelectionConfig": "pipeline", "run_selection": "pipeline", "write_results": "results",
         "SAECache": "sweep", "calibrate_width": "sweep"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"mdlcodec.selection.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mdlcodec.selection' has no attribute {name!r}")
