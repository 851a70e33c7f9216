"""The encoder's batch size follows the SAE's width (models.base.encode_batch_rows): a batch's dense
pre-activations stay within 64 MiB, and every encoding path batches the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec
from mdlcodec.models import SAEConfig, make_sae
from mdlcodec.models.base import ENCODE_BUDGET_BYTES, encode_batch_rows

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("d_sae", [1, 8, 4096, 4097, 16_384, 100_000, 262_144, 1 << 22])
def test_batch_rows_keep_the_pre_activations_within_the_budget(d_sae):
    rows = encode_batch_rows(d_sae)
    assert 64 <= rows <= 4096
    assert rows * 4 * d_sae <= ENCODE_BUDGET_BYTES or rows == 64
    assert rows == 4096 or (rows + 1) * 4 * d_sae > ENCODE_BUDGET_BYTES or rows == 64


def test_the_encoder_batches_by_the_width_and_fit_agrees_with_encode():
    sae = make_sae(SAEConfig("topk", 8, 16_384, k=4), torch.Generator().manual_seed(0))
    sizes, real = [], sae.encode_sparse
    sae.encode_sparse = lambda x: sizes.append(len(x)) or real(x)
    x = np.random.default_rng(0).standard_normal((2500, 8)).astype(np.float32)
    z = Codec.sae_sparse_encoder(sae)(x)
    assert sizes == [1024, 1024, 452] and z.n == 2500
    dense = Codec.sae_encoder(sae)(x)
    indptr, indices, values = z.csr()
    rows, cols = np.nonzero(dense)
    np.testing.assert_array_equal(indices, cols)
    np.testing.assert_array_equal(values, dense[rows, cols])
    codec = Codec.fit(sae, x, 0.05)
    # chunks of 2048 rows batch as the whole does (1024 rows each), so the matmuls are the same by construction
    assert codec.latents(x, 2048) == codec.latents(x) == codec.quantise(z)
