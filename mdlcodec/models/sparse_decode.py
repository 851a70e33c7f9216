"""Training's sparse products: with k active latents per sample, the decoder and the encoder's
gradient need only the active rows, not a dense [n, d_sae] x [d_sae, d_in] product (EleutherAI's
sparsify does the same with its own kernels).

``sparse_decode(z, W_dec)`` = z @ W_dec from z's nonzero entries only (``embedding_bag``: a weighted
sum of the active rows of W_dec per sample); its gradient reaches W_dec's active rows (the others get
exact zeros, as in the dense product) and z's nonzero entries only (a zero entry gets none: right for
activations whose zeros pass no gradient, such as top-k and thresholds; not for objective "mdl",
whose straight-through gate needs one).

``sparse_grad_pre_acts(sae, x)`` = sae.pre_acts(x), the same float32 values computed the same way,
but its backward reads only the nonzero entries of the gradient of the pre-activations (the selected
latents): grad W_enc = x'^T G from a sparse G, grad b_enc = G summed over samples, grad b_dec =
-W_enc (G summed over samples) (x' = x - b_dec, or x without apply_b_dec_to_input). The dense
backward's two [n, d_sae] x [d_sae, d_in]-sized products become products with nnz(G) terms.

Both are exact for any input (up to float32 summation order); they are faster only where z and the
gradient are sparse, so the trainer uses them for the architectures whose training latents are
pre-activations at a selection (``SAE.sparse_train``: topk, batchtopk, tree) under objective "mse".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mdlcodec.models.base import SAE


def sparse_decode(z: Tensor, W_dec: Tensor) -> Tensor:
    """z [n, d_sae] @ W_dec [d_sae, d_in] -> [n, d_in], summing only the rows of W_dec at z's nonzero
    entries (see the module docstring for the gradient). No bias, no input_scale."""
    rows, cols = z.nonzero(as_tuple=True)  # row-major: each sample's entries together, in order
    counts = torch.bincount(rows, minlength=z.shape[0])
    offsets = counts.cumsum(0) - counts
    return F.embedding_bag(cols, W_dec, offsets, mode="sum", per_sample_weights=z[rows, cols])


class _SparseGradPreActs(torch.autograd.Function):
    """Forward: (x - b_dec) @ W_enc + b_enc (or x @ W_enc + b_enc), as SAE.pre_acts computes it.
    Backward: from the gradient's nonzero entries only (module docstring); x gets no gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, subtract: bool) -> Tensor:
        x_in = x - b_dec if subtract else x
        ctx.save_for_backward(x_in, W_enc)
        ctx.subtract = subtract
        return x_in @ W_enc + b_enc

    @staticmethod
    def backward(ctx, grad: Tensor):
        x_in, W_enc = ctx.saved_tensors
        rows, cols = grad.nonzero(as_tuple=True)
        g_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), grad[rows, cols], (grad.shape[1], grad.shape[0]),
                                      check_invariants=False)  # G^T [d_sae, n]; indices in range by construction
        grad_W = torch.sparse.mm(g_t, x_in).T  # [d_in, d_sae] = x_in^T G
        grad_b_enc = grad.sum(0)
        grad_b_dec = -(W_enc @ grad_b_enc) if ctx.subtract and ctx.needs_input_grad[3] else None
        return None, grad_W, grad_b_enc, grad_b_dec, None


def sparse_grad_pre_acts(sae: SAE, x_scaled: Tensor) -> Tensor:
    """sae.pre_acts(x_scaled) [n, d_sae] (x_scaled [n, d_in] already times input_scale, needing no
    gradient) with the sparse backward of the module docstring."""
    return _SparseGradPreActs.apply(x_scaled, sae.W_enc, sae.b_enc, sae.b_dec, sae.cfg.apply_b_dec_to_input)
