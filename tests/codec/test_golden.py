"""Golden files pin the .mdlc format: they decode bit-exactly and re-encoding reproduces them
(the files are in tests/golden/, made by tests/golden/make_golden.py)."""

from pathlib import Path

import numpy as np
import pytest

from mdlcodec.codec import Codec, SparseCodes

GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.fixture(scope="module")
def expected():
    z = np.load(GOLDEN / "latents.npz")
    return SparseCodes(z["indptr"], z["indices"], z["bins"], 16)


@pytest.mark.parametrize("name", ["referenced.mdlc", "embedded.mdlc"])
def test_golden_decodes_exactly_and_reencodes_byte_for_byte(name, expected):
    data = (GOLDEN / name).read_bytes()
    codec = Codec.load(GOLDEN / "model")
    assert codec.decode_latents(data) == expected
    x = np.load(GOLDEN / "input.npy")
    assert codec.latents(x, chunk_size=10) == expected
    assert codec.encode(x, chunk_size=10, embed_model=name.startswith("embedded")) == data


def test_golden_self_contained_file_needs_no_model(expected):
    import io

    from mdlcodec.codec.container import Reader

    data = (GOLDEN / "embedded.mdlc").read_bytes()
    reader = Reader.open(io.BytesIO(data))
    codec = Codec.from_model_section(reader.model_bytes)
    assert codec.decode_latents(data) == expected
    np.testing.assert_array_equal(codec.decode(data), Codec.load(GOLDEN / "model").decode(data))


def test_golden_hierarchical_file(expected):
    """A self-contained file whose activity is coded under a feature forest: it decodes exactly from
    its own model section, and the model plus that forest re-encode it byte for byte."""
    import io

    from mdlcodec.codec.container import Reader

    data = (GOLDEN / "hierarchy.mdlc").read_bytes()
    own = Codec.from_model_section(Reader.open(io.BytesIO(data)).model_bytes)
    forest = own.entropy_model.hierarchy
    assert forest.kind == "conditional"
    assert forest.parents.tolist() == [-1, 0, 0, 1, -1, 4, 4, 5, -1, 8, 9, 10, -1, 12, 12, 13]
    assert own.decode_latents(data) == expected
    codec = Codec.load(GOLDEN / "model").with_hierarchy(forest)
    assert codec.encode(np.load(GOLDEN / "input.npy"), chunk_size=10, embed_model=True) == data
    assert data != (GOLDEN / "embedded.mdlc").read_bytes()
