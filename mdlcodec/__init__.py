"""mdlcodec: sparse autoencoders as real codecs, and MDL selection of SAEs.

The Python API a notebook needs (imported on first use, so that ``import mdlcodec`` stays light):

    mdlcodec.measure(sae, activations, max_fvu=0.1)   # bits per token beside PCA (selection.api)
    mdlcodec.Codec.fit(sae, activations, step)        # a codec in memory (codec.codec)
    mdlcodec.as_sae(obj)                              # any SAE object as an mdlcodec SAE (models.peers)
    mdlcodec.run_eval(config, selected_saes, ...)     # SAEBench's MDL eval, coded (selection.saebench)
"""

__version__ = "0.1.0"

_LAZY = {"measure": "mdlcodec.measurement.api", "Codec": "mdlcodec.codec", "as_sae": "mdlcodec.models.peers",
         "run_eval": "mdlcodec.measurement.saebench", "MDLEvalConfig": "mdlcodec.measurement.saebench"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mdlcodec' has no attribute {name!r}")
