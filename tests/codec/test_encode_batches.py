"""The encoder's batch size follows the SAE's width (codec.sae_batches.batch_rows): a batch's dense
pre-activations stay within a byte budget (PRE_ACTIVATION_BYTES, 16 MiB), and every encoding path
batches the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec
from mdlcodec.models import SAEConfig, make_sae
from mdlcodec.codec.sae_batches import PRE_ACTIVATION_BYTES, batch_rows, sae_batches

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("budget", [PRE_ACTIVATION_BYTES, 1 << 20, 100])
@pytest.mark.parametrize("d_sae", [1, 8, 4096, 4097, 16_384, 100_000, 262_144, 1 << 22, 1 << 26])
def test_batch_rows_are_the_most_whose_pre_activations_fit_the_budget(d_sae, budget):
    rows = batch_rows(d_sae, budget)
    assert rows >= 1
    assert rows * 4 * d_sae <= budget or rows == 1  # one row is the least a batch holds
    assert (rows + 1) * 4 * d_sae > budget


def test_sae_batches_hold_the_budget_s_rows_and_cover_the_input_once():
    sae = make_sae(SAEConfig("topk", 8, 1000, k=4), torch.Generator().manual_seed(0))
    x = np.random.default_rng(0).standard_normal((95, 8)).astype(np.float32)
    parts = list(sae_batches(sae, "cpu", x, budget=4 * 1000 * 20))  # 20 rows of pre-activations
    assert [s for s, _ in parts] == [0, 20, 40, 60, 80] and [len(b) for _, b in parts] == [20, 20, 20, 20, 15]
    np.testing.assert_array_equal(np.concatenate([b.numpy() for _, b in parts]), x)


def test_the_encoder_batches_by_the_width_and_fit_agrees_with_encode():
    sae = make_sae(SAEConfig("topk", 8, 16_384, k=4), torch.Generator().manual_seed(0))
    sizes, real = [], sae.encode_sparse
    sae.encode_sparse = lambda x: sizes.append(len(x)) or real(x)
    x = np.random.default_rng(0).standard_normal((2500, 8)).astype(np.float32)
    z = Codec.sae_sparse_encoder(sae)(x)
    assert sizes == [256] * 9 + [196] and z.n == 2500  # 16 MiB of pre-activations: 256 rows of 16,384
    dense = Codec.sae_encoder(sae)(x)
    indptr, indices, values = z.csr()
    rows, cols = np.nonzero(dense)
    np.testing.assert_array_equal(indices, cols)
    np.testing.assert_array_equal(values, dense[rows, cols])
    codec = Codec.fit(sae, x, 0.05)
    # chunks of 2048 rows batch as the whole does (256 rows each), so the matmuls are the same by construction
    assert codec.latents(x, 2048) == codec.latents(x) == codec.quantise(z)
