"""Regenerates the golden .mdlc files. Run only when the format version changes on purpose:

    python tests/golden/make_golden.py

A TopK SAE (d_in 8, d_sae 16, k 3, seeded random weights), step 0.05, tables fit on 200 seeded
Gaussian samples; 25 input samples coded in chunks of 10, referenced and self-contained; and
self-contained with the activity coded under a fixed feature forest (HIERARCHY, kind "conditional").
"""

from pathlib import Path

import numpy as np
import torch

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.hierarchy import Hierarchy
from mdlcodec.models import SAEConfig, make_sae, save_sae

HERE = Path(__file__).parent
HIERARCHY = [-1, 0, 0, 1, -1, 4, 4, 5, -1, 8, 9, 10, -1, 12, 12, 13]


def main() -> None:
    torch.manual_seed(1234)
    sae = make_sae(SAEConfig(arch="topk", d_in=8, d_sae=16, k=3))
    rng = np.random.default_rng(1234)
    fit_x = rng.normal(size=(200, 8)).astype(np.float32)
    x = rng.normal(size=(25, 8)).astype(np.float32)
    encoder = Codec.sae_encoder(sae)
    q = Quantiser.uniform(0.05, 16)
    fit_codes = q.quantise(encoder(fit_x))
    codec = Codec(Decoder.from_sae(sae), q, EntropyModel.fit(fit_codes), encoder)
    save_sae(sae, HERE / "model")
    codec.save_tables(HERE / "model")
    np.save(HERE / "input.npy", x)
    (HERE / "referenced.mdlc").write_bytes(codec.encode(x, chunk_size=10))
    (HERE / "embedded.mdlc").write_bytes(codec.encode(x, chunk_size=10, embed_model=True))
    forest = codec.with_hierarchy(Hierarchy.count(fit_codes, np.array(HIERARCHY), "conditional"))
    (HERE / "hierarchy.mdlc").write_bytes(forest.encode(x, chunk_size=10, embed_model=True))
    codes = codec.latents(x)
    np.savez(HERE / "latents.npz", indptr=codes.indptr, indices=codes.indices, bins=codes.bins)


if __name__ == "__main__":
    main()
