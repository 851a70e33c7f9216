"""The two-part code at a tolerance: the decoder's rows coded at a precision (decoder_code) chosen
together with the latents' step, so that the quantised decoder and the quantised latents together
still meet the tolerance, and the sum of the two parts is shortest.

For each number of levels L in ``LEVELS`` (each side of 0, per row): the decoder coded at L; the
coarsest uniform latent step whose test reconstruction through that decoder meets max_mse
(precision.coarsest_step); tables fit on the training split's latents at that step; and the total
bits = the test split's cross-entropy (all rows) + the decoder's coded bits. The codec of the
shortest total is kept (flat activity coding). A level whose decoder alone misses the tolerance is
reported as such. The figures are per the test split's n rows; the break-even against another
code (``break_even``) is where the two totals cross.
"""

from __future__ import annotations

from mdlcodec.codec.codec import DEFAULT_CHUNK, Codec
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.rate.precision import coarsest_step
from mdlcodec.codec.rate.quantiser import Quantiser
from mdlcodec.codec.sae_batches import latents_in_chunks
from mdlcodec.core.errors import CodecError

LEVELS = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def fit_two_part(codec: Codec, train_x, test_x, max_mse: float, levels: tuple[int, ...] = LEVELS,
                 latents: tuple | None = None) -> tuple[Codec, dict]:
    """The codec (codec's encoder, a coded decoder, its own step and flat tables) of the shortest
    two-part code of test_x within max_mse (the module's docstring). Returns (codec, report):
    report["levels"] lists each L tried {levels, step, decoder_bits, cross_entropy_bits (test split,
    all rows), total_bits} or {levels, reason}; report["chosen"] the kept one. CodecError if no level
    meets the tolerance. ``latents``: the encoder's (z_train, z_test) of the two splits when the
    caller has them, so that the encoder does not run again."""
    z_train, z_test = latents if latents is not None else (
        latents_in_chunks(codec.encoder, x, codec.decoder.d_in, what, DEFAULT_CHUNK)
        for x, what in ((train_x, "training data"), (test_x, "test data")))
    tried, best = [], None
    for L in levels:
        decoder = codec.decoder.with_coded_rows(L)
        try:
            step = coarsest_step(decoder, z_test, test_x, max_mse)
        except CodecError as e:
            tried.append({"levels": L, "reason": str(e)})
            continue
        q = Quantiser.uniform(step, decoder.d_sae)
        candidate = Codec(decoder, q, EntropyModel.fit(q.quantise_latents(z_train)), codec.encoder,
                          device=codec.device)
        ce = candidate.chunk_coder.ideal_bits(q.quantise_latents(z_test))["total"]
        row = {"levels": L, "step": float(step), "decoder_bits": decoder.bits(), "cross_entropy_bits": ce,
               "total_bits": ce + decoder.bits()}
        tried.append(row)
        if best is None or row["total_bits"] < best[1]["total_bits"]:
            best = (candidate, row)
    if best is None:
        raise CodecError(f"no decoder precision meets test MSE <= {max_mse:.6g} (tried {len(levels)} levels)")
    return best[0], {"levels": tried, "chosen": best[1]}


def break_even(bits_a: float, decoder_a: float, bits_b: float, decoder_b: float) -> float | None:
    """Samples n from which code a (bits_a per sample + decoder_a once) is no longer than code b;
    0 if a is never longer, None if it is always longer."""
    if bits_a >= bits_b:
        return 0.0 if bits_a == bits_b and decoder_a <= decoder_b else None
    return max(0.0, (decoder_a - decoder_b) / (bits_b - bits_a))
