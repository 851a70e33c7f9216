"""What a parallel encode holds (issue 21 §3): a codec loaded from its folder holds one float32 W_dec
(its decoder's array is its SAE's memory), the process that only writes the file loads no encoder
(Codec.load(encoder=False)) and writes the same bytes, and a worker keeps no input open between chunks."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec, RowSource, encode_file
from mdlcodec.codec.decoder import Decoder
from mdlcodec.codec.parallel import EncodeTask, encode_chunk, new_run
from mdlcodec.core.errors import ModelError
from mdlcodec.models import SAEConfig, load_sae, make_sae, save_sae

pytestmark = pytest.mark.usefixtures("one_thread")

FILE_ID = "1e" * 16
D_IN, D_SAE = 32, 8192  # W_dec 1 MiB: larger than everything else a codec's numpy arrays hold


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """(model folder of a random TopK SAE with tables, rows x [300, D_IN] float32, x saved as a .npy)."""
    d = tmp_path_factory.mktemp("wide")
    sae = make_sae(SAEConfig("topk", D_IN, D_SAE, k=4), torch.Generator().manual_seed(0))
    x = np.random.default_rng(0).standard_normal((300, D_IN)).astype(np.float32)
    save_sae(sae, d / "model")
    Codec.fit(sae, x, 0.05).save_tables(d / "model")
    np.save(d / "x.npy", x)
    return d / "model", x, d / "x.npy"


def _numpy_bytes(make) -> tuple[object, int, int]:
    """(make(), bytes of numpy array buffers it left allocated, peak bytes of Python's allocations while
    it ran), as tracemalloc sees them (numpy reports its buffers to it in their own domain; torch's
    and safetensors' tensors are not seen)."""
    gc.collect()
    tracemalloc.start()
    try:
        out = make()
        _, peak = tracemalloc.get_traced_memory()
        numpy_only = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
        held = sum(s.size for s in tracemalloc.take_snapshot().filter_traces([numpy_only]).statistics("filename"))
    finally:
        tracemalloc.stop()
    return out, held, peak


def test_a_loaded_codec_holds_no_second_float32_copy_of_W_dec(wide):
    model, x, _ = wide
    w_bytes = 4 * D_SAE * D_IN
    _, held, _ = _numpy_bytes(lambda: Codec.fit(load_sae(model), x, 0.05))
    assert held >= w_bytes  # the measure sees a copy where there is one (Codec.fit copies the caller's SAE's)
    for encoder in (True, False):
        codec, held, _ = _numpy_bytes(lambda: Codec.load(model, encoder=encoder))
        assert held < w_bytes / 2, (encoder, held)
        assert codec.decoder.W_dec.shape == (D_SAE, D_IN)
        _, _, peak = _numpy_bytes(lambda: codec.header(10, 5))  # the fingerprint hashes W_dec where it lies
        assert peak < w_bytes / 2
    sae = load_sae(model)
    _, _, peak = _numpy_bytes(lambda: Decoder.from_sae(sae, share=True))
    assert peak < w_bytes / 2


def test_the_encoder_s_sae_and_the_decoder_share_W_dec(wide):
    model, _, _ = wide
    codec = Codec.load(model)
    assert np.shares_memory(codec.decoder.W_dec, codec.encoder.sae.W_dec.detach().numpy())


def test_a_codec_without_its_encoder_writes_the_header_and_the_bytes_workers_encode(wide, tmp_path):
    model, x, npy = wide
    full, light = Codec.load(model), Codec.load(model, encoder=False)
    assert light.encoder is None and light.data_stats == full.data_stats
    assert light.header(300, 64, FILE_ID) == full.header(300, 64, FILE_ID)
    assert light.model_section() == full.model_section()
    encode_file(full, x, tmp_path / "serial.mdlc", chunk_size=64, file_id=FILE_ID, embed_model=True)
    encode_file(light, np.load(npy, mmap_mode="r"), tmp_path / "workers.mdlc", chunk_size=64, file_id=FILE_ID,
                embed_model=True, source=RowSource(np.load, (str(npy), "r")), workers=2)
    assert (tmp_path / "workers.mdlc").read_bytes() == (tmp_path / "serial.mdlc").read_bytes()
    with pytest.raises(ModelError, match="has no encoder"):  # in this process it cannot encode
        encode_file(light, x, tmp_path / "here.mdlc", chunk_size=64)
    assert not (tmp_path / "here.mdlc").exists()


def test_a_worker_opens_the_input_for_each_chunk_and_keeps_none_of_it(wide):
    model, x, npy = wide
    codec, opened = Codec.load(model), []

    def opener():
        m = np.load(npy, mmap_mode="r")
        opened.append(weakref.ref(m))
        return m

    run = new_run()
    for i, (s, e) in enumerate([(0, 64), (64, 128)]):
        words = encode_chunk(EncodeTask(run, codec, RowSource(opener), s, e, i, len(x)))
        np.testing.assert_array_equal(words, codec.chunk_words(x[s:e], s))
    gc.collect()
    assert len(opened) == 2 and all(ref() is None for ref in opened)  # no memory map outlives its chunk
