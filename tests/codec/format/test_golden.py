"""Golden files pin the .mdlc format: every version decodes bit-exactly, and re-encoding reproduces
the files of versions 2 and 3 (the versions mdlcodec writes) byte for byte (the files are in tests/golden/, made by
tests/golden/make_golden.py; the version-1 files were written by version 1 and are kept as they were)."""

import io
from pathlib import Path

import numpy as np
import pytest

from mdlcodec.codec import Codec, SparseCodes
from mdlcodec.codec.format.container import Reader

GOLDEN = Path(__file__).parents[2] / "golden"
FILE_ID = "00112233445566778899aabbccddeeff"  # make_golden.FILE_ID
V1 = ["referenced.mdlc", "embedded.mdlc", "hierarchy.mdlc"]
V2 = ["referenced_v2.mdlc", "embedded_v2.mdlc", "hierarchy_v2.mdlc"]
V3 = ["referenced_v3.mdlc", "embedded_v3.mdlc", "hierarchy_v3.mdlc"]


def _version_of(name: str) -> int:
    return 3 if name in V3 else 2 if name in V2 else 1


@pytest.fixture(scope="module")
def expected():
    z = np.load(GOLDEN / "latents.npz")
    return SparseCodes(z["indptr"], z["indices"], z["bins"], 16)


def _version(data: bytes) -> int:
    return Reader.open(io.BytesIO(data)).version


@pytest.mark.parametrize("name", V1 + V2 + V3)
def test_golden_decodes_exactly_with_the_model(name, expected):
    data = (GOLDEN / name).read_bytes()
    assert _version(data) == _version_of(name)
    codec = Codec.load(GOLDEN / "model")
    own = Codec.from_model_section(Reader.open(io.BytesIO(data)).model_bytes) if "referenced" not in name else codec
    assert own.decode_latents(data) == expected
    np.testing.assert_array_equal(own.decode(data), codec.reconstruct(expected))
    x = np.load(GOLDEN / "input.npy")
    assert codec.latents(x, chunk_size=10) == expected


@pytest.mark.parametrize("name", ["referenced_v2.mdlc", "embedded_v2.mdlc", "referenced_v3.mdlc", "embedded_v3.mdlc"])
def test_golden_reencodes_byte_for_byte(name):
    data = (GOLDEN / name).read_bytes()
    codec = Codec.load(GOLDEN / "model")
    x = np.load(GOLDEN / "input.npy")
    assert codec.encode(x, chunk_size=10, embed_model=name.startswith("embedded"), file_id=FILE_ID,
                        version=_version_of(name)) == data


def test_golden_v3_is_the_default_and_differs_from_v2_only_in_the_chunks():
    """Files are written in version 3 unless told; the preamble's version, the chunks' words and what
    covers them (chunk CRCs, file CRC, footer CRC) are all that differs from version 2."""
    codec = Codec.load(GOLDEN / "model")
    x = np.load(GOLDEN / "input.npy")
    assert codec.encode(x, chunk_size=10, file_id=FILE_ID) == (GOLDEN / "referenced_v3.mdlc").read_bytes()
    v2, v3 = (Reader.open(io.BytesIO((GOLDEN / f"embedded_v{v}.mdlc").read_bytes())) for v in (2, 3))
    assert v2.header.to_json() == v3.header.to_json() and v2.model_bytes == v3.model_bytes
    assert [w.tolist() for _, w in v2.chunks()] != [w.tolist() for _, w in v3.chunks()]


@pytest.mark.parametrize("name", ["embedded.mdlc", "embedded_v2.mdlc", "embedded_v3.mdlc"])
def test_golden_self_contained_file_needs_no_model(name, expected):
    data = (GOLDEN / name).read_bytes()
    reader = Reader.open(io.BytesIO(data))
    codec = Codec.from_model_section(reader.model_bytes)
    assert codec.decode_latents(data) == expected
    np.testing.assert_array_equal(codec.decode(data), Codec.load(GOLDEN / "model").decode(data))


@pytest.mark.parametrize("name", ["hierarchy.mdlc", "hierarchy_v2.mdlc", "hierarchy_v3.mdlc"])
def test_golden_hierarchical_file(name, expected):
    """A self-contained file whose activity is coded under a feature forest: it decodes exactly from
    its own model section, and (versions 2 and 3) the model plus that forest re-encode it byte for byte."""
    data = (GOLDEN / name).read_bytes()
    own = Codec.from_model_section(Reader.open(io.BytesIO(data)).model_bytes)
    forest = own.entropy_model.hierarchy
    assert forest.kind == "conditional"
    assert forest.parents.tolist() == [-1, 0, 0, 1, -1, 4, 4, 5, -1, 8, 9, 10, -1, 12, 12, 13]
    assert own.decode_latents(data) == expected
    if name in V2 + V3:
        codec = Codec.load(GOLDEN / "model").with_hierarchy(forest)
        assert codec.encode(np.load(GOLDEN / "input.npy"), chunk_size=10, embed_model=True, file_id=FILE_ID,
                            version=_version_of(name)) == data
    assert data != (GOLDEN / name.replace("hierarchy", "embedded")).read_bytes()


def test_golden_v2_chunk_index_matches_a_sequential_read():
    """The footer of versions 2 and 3 locates every chunk (random access), and so do a version-1 file's chunk heads."""
    for name in ("referenced_v3.mdlc", "referenced_v2.mdlc", "referenced.mdlc"):
        data = (GOLDEN / name).read_bytes()
        reader = Reader.open(io.BytesIO(data))
        index = reader.chunk_index()
        assert [(e.n_rows, e.first_row) for e in index] == [(10, 0), (10, 10), (5, 20)]
        sequential = list(reader.chunks())
        for i, entry in enumerate(index):
            n_rows, words = reader.read_chunk(i, entry)
            assert n_rows == sequential[i][0] and np.array_equal(words, sequential[i][1])


def test_golden_input_is_far_from_every_boundary():
    """The golden files are re-made from input.npy through the SAE's matmul, so that no CPU's summation
    order (a few ulps) may move a latent across a rounding edge or swap the k-th and (k+1)-th: the
    margins are orders of magnitude above float32's error."""
    import torch

    from mdlcodec.models import load_sae

    sae = load_sae(GOLDEN / "model")
    x = torch.from_numpy(np.load(GOLDEN / "input.npy"))
    with torch.no_grad():
        pre, z = sae.pre_acts(x).numpy(), sae.encode(x).numpy()
    ranked = -np.sort(-pre, axis=1)
    assert (ranked[:, 2] - ranked[:, 3]).min() > 1e-3  # k = 3
    v = z[z != 0] / Codec.load(GOLDEN / "model").quantiser.step[0]
    assert np.abs(v - np.floor(v) - 0.5).min() > 1e-4  # bins, ~1e-6 of them is float32's error here
