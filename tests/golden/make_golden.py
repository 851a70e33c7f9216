"""Writes the golden .mdlc files of the current format version. Run only when the format version
changes on purpose, and add the new files beside the old ones (older versions must keep decoding):

    python tests/golden/make_golden.py            # writes the *_v2.mdlc and *_v3.mdlc files
    python tests/golden/make_golden.py --model    # also re-makes model/, input.npy, latents.npz (never needed)

The model (``make_model``): a TopK SAE (d_in 8, d_sae 16, k 3, seeded random weights), step 0.05,
tables fit on 200 seeded Gaussian samples; 25 input samples coded in chunks of 10, referenced and
self-contained, and self-contained with the activity coded under a fixed feature forest (HIERARCHY,
kind "conditional").

Version 1 (referenced.mdlc, embedded.mdlc, hierarchy.mdlc) was written by this script at format
version 1 and is kept as it was. Version 2 (referenced_v2.mdlc, embedded_v2.mdlc, hierarchy_v2.mdlc)
is written from the committed model and input with the fixed file id FILE_ID, so that re-encoding
reproduces it byte for byte. Version 3 (referenced_v3.mdlc, embedded_v3.mdlc, hierarchy_v3.mdlc: the
occupancy coding of activity, codec/entropy/occupancy.py) likewise. Writing them again must change no byte of
the committed files (the tests re-encode them); a format change gets a new version and new files.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.entropy.hierarchy import Hierarchy
from mdlcodec.models import SAEConfig, make_sae, save_sae

HERE = Path(__file__).parent
HIERARCHY = [-1, 0, 0, 1, -1, 4, 4, 5, -1, 8, 9, 10, -1, 12, 12, 13]
FILE_ID = "00112233445566778899aabbccddeeff"


def make_model() -> None:
    """The model, its input and the expected latents (as made for version 1; the same code)."""
    torch.manual_seed(1234)
    sae = make_sae(SAEConfig(arch="topk", d_in=8, d_sae=16, k=3))
    rng = np.random.default_rng(1234)
    fit_x = rng.normal(size=(200, 8)).astype(np.float32)
    x = rng.normal(size=(25, 8)).astype(np.float32)
    encoder = Codec.sae_encoder(sae)
    q = Quantiser.uniform(0.05, 16)
    codec = Codec(Decoder.from_sae(sae), q, EntropyModel.fit(q.quantise(encoder(fit_x))), encoder)
    save_sae(sae, HERE / "model")
    codec.save_tables(HERE / "model")
    np.save(HERE / "input.npy", x)
    codes = codec.latents(x)
    np.savez(HERE / "latents.npz", indptr=codes.indptr, indices=codes.indices, bins=codes.bins)


def forest_codec(codec: Codec) -> Codec:
    """The model coded under HIERARCHY, counted on the same 200 fitting samples as its tables."""
    rng = np.random.default_rng(1234)
    fit_x = rng.normal(size=(200, 8)).astype(np.float32)
    return codec.with_hierarchy(Hierarchy.count(codec.latents(fit_x), np.array(HIERARCHY), "conditional"))


def main() -> None:
    if "--model" in sys.argv[1:]:
        make_model()
    codec = Codec.load(HERE / "model")
    x = np.load(HERE / "input.npy")
    for v in (2, 3):
        (HERE / f"referenced_v{v}.mdlc").write_bytes(codec.encode(x, chunk_size=10, file_id=FILE_ID, version=v))
        (HERE / f"embedded_v{v}.mdlc").write_bytes(codec.encode(x, chunk_size=10, embed_model=True, file_id=FILE_ID,
                                                               version=v))
        (HERE / f"hierarchy_v{v}.mdlc").write_bytes(forest_codec(codec).encode(x, chunk_size=10, embed_model=True,
                                                                               file_id=FILE_ID, version=v))


if __name__ == "__main__":
    main()
