"""Codec throughput on one core: SAE matmul time apart from entropy-coding time.

    python bench/codec_speed.py [--samples 8192]

Settings (issue 3): d=784, D=1024 and d=768, D=16384, each a TopK SAE with L0=64 (random
unit-norm dictionary: speed does not depend on training), inputs from the synthetic LM-like
generator (d=768) or Gaussian (d=784). The quantiser step is a sixteenth of the median active
value (about 5 bits per value). Prints samples/s and active latents/s for each stage, and the
share of entropy coding in the encoder's total time. Targets: entropy coding >= 1e6 active
latents/s, and <= 25% of the encoder's time at D=16384.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.models import SAEConfig, make_sae


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def run(d_in: int, d_sae: int, k: int, n: int) -> dict:
    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=k))
    rng = np.random.default_rng(0)
    if d_in == 768:
        from mdlcodec.data import load_dataset
        x = load_dataset(f"toy:lm,n={int(2 * n / 0.8) + 2}").train[: 2 * n]  # the train split is 80%
    else:
        x = rng.normal(size=(2 * n, d_in)).astype(np.float32)
    fit_x, x = x[:n], x[n:2 * n]
    encoder = Codec.sae_sparse_encoder(sae)  # the codec's own: (values, indices), no dense latents
    z_fit = encoder(fit_x)
    step = float(np.median(z_fit.values[z_fit.values != 0])) / 16
    q = Quantiser.uniform(step, d_sae)
    codec = Codec(Decoder.from_sae(sae), q, EntropyModel.fit(q.quantise_sparse(*z_fit)), encoder)
    coder = codec.chunk_coder
    coder.tables  # build the activity tables outside the timings
    chunk = 4096
    t_sae = t_quant = t_enc = t_dec = t_rec = 0.0
    nnz = 0
    bits = 0
    for s in range(0, n, chunk):
        xs = x[s:s + chunk]
        z, dt = timed(encoder, xs); t_sae += dt
        codes, dt = timed(q.quantise_sparse, *z); t_quant += dt
        words, dt = timed(coder.encode, codes); t_enc += dt
        back, dt = timed(coder.decode, words, codes.n); t_dec += dt
        assert back == codes
        _, dt = timed(codec.reconstruct, back); t_rec += dt
        nnz += codes.nnz
        bits += 32 * len(words)
    total_enc = t_sae + t_quant + t_enc
    return {"d_in": d_in, "d_sae": d_sae, "L0": nnz / n, "bits_per_sample": bits / n,
            "sae_encode_samples_per_s": n / t_sae, "quantise_samples_per_s": n / t_quant,
            "entropy_encode_samples_per_s": n / t_enc, "entropy_encode_latents_per_s": nnz / t_enc,
            "entropy_decode_samples_per_s": n / t_dec, "entropy_decode_latents_per_s": nnz / t_dec,
            "reconstruct_samples_per_s": n / t_rec,
            "encoder_total_samples_per_s": n / total_enc, "entropy_share_of_encoder": t_enc / total_enc,
            "decoder_total_samples_per_s": n / (t_dec + t_rec)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=8192)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
          f"1 thread, {args.samples} samples per setting")
    for d_in, d_sae in [(784, 1024), (768, 16384)]:
        r = run(d_in, d_sae, 64, args.samples)
        print(f"\nd={d_in} D={d_sae} L0={r['L0']:.1f}: {r['bits_per_sample']:.1f} bits/sample")
        print(f"  SAE encode (matmul+TopK) {r['sae_encode_samples_per_s']:10.0f} samples/s")
        print(f"  quantise                 {r['quantise_samples_per_s']:10.0f} samples/s")
        print(f"  entropy encode           {r['entropy_encode_samples_per_s']:10.0f} samples/s "
              f"{r['entropy_encode_latents_per_s'] / 1e6:6.2f} M active latents/s")
        print(f"  entropy decode           {r['entropy_decode_samples_per_s']:10.0f} samples/s "
              f"{r['entropy_decode_latents_per_s'] / 1e6:6.2f} M active latents/s")
        print(f"  reconstruct (sparse)     {r['reconstruct_samples_per_s']:10.0f} samples/s")
        print(f"  encoder total            {r['encoder_total_samples_per_s']:10.0f} samples/s; "
              f"entropy coding is {100 * r['entropy_share_of_encoder']:.1f}% of it")
        print(f"  decoder total            {r['decoder_total_samples_per_s']:10.0f} samples/s")


if __name__ == "__main__":
    main()
