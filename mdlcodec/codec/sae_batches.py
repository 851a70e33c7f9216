"""Running an SAE's encoder over activations for the codec: the SAE on its device, the rows in
batches sized by a byte budget for their pre-activations, each batch checked for pre-activations that
could overflow float32. Every encoding path (``Codec.sae_sparse_encoder`` and ``Codec.sae_encoder``)
batches here."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from mdlcodec.codec.rate.quantiser import RowError

PRE_ACTIVATION_BYTES = 16 << 20
"""The budget of one encoding batch: its dense float32 pre-activations [rows, d_sae] take at most
this many bytes (16 MiB: 256 rows at d_sae 16,384, 4,096 rows at 1,024), unless one row alone takes
more (then batches of 1 row). The matmul's output and the sum with the encoder's bias are two such
matrices at once, so an encoding batch peaks at about twice the budget; the time per row does not
depend on it down to about 128 rows at d_sae 16,384 (bench/scale_store.py's SAE, one thread)."""


def batch_rows(d_sae: int, budget: int = PRE_ACTIVATION_BYTES) -> int:
    """Rows of an encoding batch whose float32 pre-activations [rows, d_sae] fit ``budget`` bytes (at least 1)."""
    return max(1, int(budget) // (4 * max(1, int(d_sae))))


def sae_batches(sae, device: str, x: np.ndarray, budget: int = PRE_ACTIVATION_BYTES):
    """(first row, batch tensor [rows, d_in] float32 on device) of x in batches of
    ``batch_rows(d_sae, budget)`` rows (at most ``budget`` bytes of pre-activations), each checked
    first (``pre_activation_check``). The dense pre-activations of one batch are the only
    [rows, d_sae] matrix an encoding builds (a matmul's output is dense; the active latents are taken
    from it as values and indices). Every encoding path (``sae_sparse_encoder`` and ``sae_encoder``:
    fit, encode, measure, select) batches here with the same budget, so their latents agree bit for
    bit (a matmul's rounding may depend on its batch)."""
    check, rows = pre_activation_check(sae), batch_rows(sae.cfg.d_sae, budget)
    for s in range(0, len(x), rows):
        check(x[s:s + rows], s)
        yield s, torch.tensor(x[s:s + rows], dtype=torch.float32, device=device)


def on_device(sae, device: str):
    """The SAE in eval mode on ``device``: ModelError (one line) for a device this machine lacks or
    that is not cpu or cuda[:N] (models.train.check_device)."""
    from mdlcodec.models.train import check_device

    check_device(device)
    return sae.to(device).eval()


def pre_activation_check(sae) -> Callable[[np.ndarray, int], None]:
    """check(x, first_row): RowError for the first row of x whose pre-activations in ``sae`` could
    overflow float32 (an SAE thresholds NaN or Inf pre-activations to nothing, so such a row would be
    coded as if it were empty). A bound in float64: (max|x_r| * input_scale + max|b_dec|) * (the
    largest L1 norm of a column of W_enc) + max|b_enc|, kept below float32's max / 4."""
    with torch.no_grad():
        l1 = float(torch.linalg.vector_norm(sae.W_enc.detach(), 1, dim=0).max()) if sae.W_enc.numel() else 0.0  # no |W_enc| copy
        b_dec, b_enc = (float(t.detach().abs().max()) if t.numel() else 0.0 for t in (sae.b_dec, sae.b_enc))
    scale, big = float(sae.cfg.input_scale), float(np.finfo(np.float32).max) / 4

    def check(x: np.ndarray, first_row: int) -> None:
        if not len(x):
            return
        bound = (np.abs(np.asarray(x, np.float64)).max(axis=1) * scale + b_dec) * l1 + b_enc
        bad = np.flatnonzero(~(bound <= big))
        if len(bad):
            raise RowError(first_row + int(bad[0]),
                           "is too large for the SAE: its pre-activations could overflow float32")
    return check


def latents_in_chunks(encoder: Callable, x, d_in: int, what: str, chunk: int):
    """An encoder's unquantised latents of the rows of x [n, d_in] (any row-sliceable matrix: a shard
    folder streams), ``chunk`` rows at a time, each checked (decoder.check_activations) first:
    SparseLatents for a sparse encoder, else one dense array."""
    from mdlcodec.codec.decoder import check_activations
    from mdlcodec.codec.sparse import SparseLatents

    parts = [encoder(check_activations(x[s:s + chunk], d_in, what)) for s in range(0, len(x), chunk)]
    return SparseLatents.concat(parts) if isinstance(parts[0], SparseLatents) else np.concatenate(parts)
