"""A model folder's codec tables: the current set ``codec.safetensors`` (quantiser steps and entropy
counts, with the SAE weights' fingerprint and the encoder's RDO lambda in its metadata) and the
archive ``tables/<entropy fingerprint>.safetensors`` of every set ever fitted, so that files coded
with earlier tables still decode; and the same arrays in a self-contained file's model section.
Every array is checked by dtype and shape against the others before use."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import safetensors.numpy

from mdlcodec.codec.arrays import check_keys, take
from mdlcodec.codec.decoder import Decoder
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.hierarchy import Hierarchy
from mdlcodec.codec.format.container import Header
from mdlcodec.codec.rate.quantiser import Quantiser
from mdlcodec.core.atomic import atomic_output
from mdlcodec.core.errors import CodecError, ModelError
from mdlcodec.core.paths import regular_file

TABLES_FILE = "codec.safetensors"
TABLES_DIR = "tables"


def tables_arrays(quantiser: Quantiser, model: EntropyModel) -> dict[str, np.ndarray]:
    """The arrays a tables file (and a model section, beside the decoder's) holds."""
    return {"step": quantiser.step, **model.to_arrays()}


def entropy_fingerprint(quantiser: Quantiser, model: EntropyModel) -> str:
    """32 hex digits naming the tables (quantiser steps and entropy-model counts) a file was coded with."""
    h = hashlib.sha256(quantiser.step.astype("<f4").tobytes())
    h.update(model.fingerprint().encode())
    return h.hexdigest()[:32]


def check_section_header(a: dict[str, np.ndarray], quantiser: Quantiser, model: EntropyModel, header: Header) -> None:
    """CodecError unless a model section's arrays ``a`` (its tables read: ``quantiser``, ``model``) have the
    file header's d_sae, d_in (b_dec's length, where b_dec is a float32 vector: else its own check names it)
    and tables fingerprint: checked before the decoder's rows are read (``Codec.from_model_section``)."""
    b = a.get("b_dec")
    d_in = b.shape[0] if isinstance(b, np.ndarray) and b.ndim == 1 and b.dtype == np.float32 else header.d_in
    if (header.d_sae, header.d_in) != (model.d_sae, d_in):
        raise CodecError(f"the file's header says d_in={header.d_in}, d_sae={header.d_sae}; its model "
                         f"section holds b_dec of {d_in} and tables of {model.d_sae} features")
    if header.entropy_model_fingerprint != entropy_fingerprint(quantiser, model):
        raise CodecError("the model does not match the file (codec tables fingerprint differs)")


def tables_from_arrays(a: dict[str, np.ndarray], others: set[str] = frozenset()) -> tuple[Quantiser, EntropyModel]:
    """The tables in ``a`` (a tables file's arrays, or with ``others`` the model section's):
    exactly the arrays ``tables_arrays`` writes, each checked by dtype and shape against the
    others (step: float32 [d_sae], finite, > 0) before use. ValueError naming the problem."""
    check_keys(a, {"step"} | EntropyModel.ARRAYS | set(others), Hierarchy.ARRAYS)
    model = EntropyModel.from_arrays(a)
    return Quantiser(take(a, "step", np.float32, (model.d_sae,))), model


def write_tables(path: Path, quantiser: Quantiser, model: EntropyModel, sae_fingerprint: str,
                 rdo_lambda: float | None = None, replace: bool = True) -> None:
    """The tables as a safetensors file at ``path`` (atomic; kept as it is where it exists and not
    ``replace``), fitted for the SAE of ``sae_fingerprint``, with the encoder's RDO lambda."""
    if path.exists() and not replace:
        return
    with atomic_output(path) as tmp:
        meta = {"sae_fingerprint": sae_fingerprint}
        if rdo_lambda is not None:
            meta["rdo_lambda"] = repr(float(rdo_lambda))
        tmp.write_bytes(safetensors.numpy.save(tables_arrays(quantiser, model), metadata=meta))  # OSErrors as OSErrors


def read_rdo(path: Path) -> float | None:
    """The encoder's rdo_lambda in a tables file's metadata (``write_tables``), or None (plain
    encoding; also for a value that is not a finite number > 0)."""
    try:
        with safetensors.safe_open(str(path), "np") as f:
            lam = float((f.metadata() or {}).get("rdo_lambda", "nan"))
    except Exception:
        return None
    return lam if np.isfinite(lam) and lam > 0 else None


def read_tables(path: Path, decoder: Decoder) -> tuple[Quantiser, EntropyModel]:
    """The tables in ``path``; ModelError if not a regular file (a FIFO would block the read),
    unreadable or fitted for other SAE weights."""
    regular_file(path, error=ModelError)
    try:
        arrays = safetensors.numpy.load_file(str(path))
        with safetensors.safe_open(str(path), "np") as f:
            fitted_for = (f.metadata() or {}).get("sae_fingerprint")
    except Exception as e:
        raise ModelError(f"cannot read {path}: {e}") from None
    if fitted_for != decoder.fingerprint():
        raise ModelError(f"the codec tables in {path} were fitted for other SAE weights", param="tables")
    try:
        return tables_from_arrays(arrays)
    except ValueError as e:
        raise ModelError(f"the codec tables in {path} are damaged ({e})") from None
