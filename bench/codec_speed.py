"""Codec throughput on one core: SAE matmul time apart from entropy-coding time, flat and Chow-Liu
coding, and how close the coder comes to constriction alone.

    python bench/codec_speed.py [--samples 8192]

Settings (issues 3 and 13): d=784, D=1024 and d=768, D=16384, each a TopK SAE with L0=64 (random
unit-norm dictionary: speed does not depend on training), inputs from the synthetic LM-like
generator (d=768) or Gaussian (d=784). The quantiser step is a sixteenth of the median active
value (about 5 bits per value). Prints samples/s and active latents/s for each stage, and the
share of entropy coding in the encoder's total time (wall clock). Chunks of 4,096 samples.

At D=16384 the chunk coder alone is then timed in CPU seconds (time.process_time, best of three
passes over the test chunks: the figures hold on a shared machine), next to the coder before
issue 13 (tests/codec/reference_coder.py, which writes the same streams) and constriction alone.

Chow-Liu: a forest fit with ``hierarchy.chow_liu`` on the fit codes. A random SAE's latents share
no information (no edges, so that coder is the flat one), hence a second code set at D=16384 with
planted structure: 4,096 chains of 4 features (a child fires with 70% probability when its parent
does, 0.02% otherwise; L0 about 64), where Chow-Liu finds a forest of depth 3.

"constriction ceiling": constriction alone coding the same symbols, precomputed, one call each:
the chunk's activity bits with their probabilities (two-symbol Categorical rows, the coder's own
model) and its value symbols (three-symbol rows of their exact intervals to encode; to decode,
rows of each symbol's whole table, padded to the widest, so only an approximation of the work).

Targets (issue 13): entropy coding >= 3e6 active latents/s both ways at D=16384, Chow-Liu at most
1.5x slower than flat.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import constriction
import numpy as np
import torch

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.activity import activity_decisions
from mdlcodec.codec.bitstream import ChunkCoder, _bit_rows, _interval_rows
from mdlcodec.codec.hierarchy import chow_liu
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.models import SAEConfig, make_sae

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the old coder lives in the tests
from tests.codec.reference_coder import ReferenceCoder

CHUNK = 4096
REPEATS = 3


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def row_slice(codes: SparseCodes, a: int, b: int) -> SparseCodes:
    lo, hi = codes.indptr[a], codes.indptr[b]
    return SparseCodes(codes.indptr[a:b + 1] - lo, codes.indices[lo:hi], codes.bins[lo:hi], codes.d_sae)


def chunks(codes: SparseCodes) -> list[SparseCodes]:
    return [row_slice(codes, s, min(codes.n, s + CHUNK)) for s in range(0, codes.n, CHUNK)]


def best_rate(fn, parts: list, nnz: int) -> float:
    """Active latents per CPU second of fn over all parts, best of REPEATS passes."""
    best = float("inf")
    for _ in range(REPEATS):
        t = time.process_time()
        for p in parts:
            fn(p)
        best = min(best, time.process_time() - t)
    return nnz / best


def coder_rates(coder: ChunkCoder, parts: list[SparseCodes]) -> dict:
    """Encode and decode rates (active latents per CPU second) of the chunk coder, of the old coder
    (tests/codec/reference_coder.py, the same streams) and of constriction alone."""
    coder.tables, coder.model.value_models, coder.model.value_cdf  # noqa: B018 (built outside the timings)
    old = ReferenceCoder(coder.model)
    nnz = sum(p.nnz for p in parts)
    words = [coder.encode(p) for p in parts]
    assert all(coder.decode(w, p.n) == p for w, p in zip(words, parts))
    assert all(np.array_equal(old.encode(p), w) for w, p in zip(words, parts))
    coded = list(zip(words, [p.n for p in parts]))
    out = {"encode": best_rate(coder.encode, parts, nnz), "decode": best_rate(lambda wp: coder.decode(*wp), coded, nnz),
           "old_encode": best_rate(old.encode, parts, nnz), "old_decode": best_rate(lambda wp: old.decode(*wp), coded, nnz),
           "bits_per_sample": 32 * sum(len(w) for w in words) / sum(p.n for p in parts)}
    out.update(ceiling(coder, parts, nnz))
    return out


def ceiling(coder: ChunkCoder, parts: list[SparseCodes], nnz: int) -> dict:
    """constriction alone on each chunk's symbols, precomputed (see the module docstring)."""
    cat = constriction.stream.model.Categorical(perfect=False)
    m = coder.model
    starts, cdf = m.value_cdf
    width = int(m.table_sizes.max()) + 1
    weights = np.zeros((m.d_sae, width))  # each feature's table (weights), padded to the widest
    for g in range(m.d_sae):
        w = m.value_weights(g)
        weights[g, :len(w)] = w
    pre = []
    for p in parts:
        steps = activity_decisions(p, coder.tables).steps
        bits = np.concatenate([b for b, _ in steps])
        rows2 = _bit_rows(np.concatenate([q for _, q in steps]))
        order = np.argsort(p.indices, kind="stable")
        f = p.indices[order]
        sym = m.value_symbols(f, p.bins[order])
        left = cdf[starts[f] + sym]
        s3, rows3 = _interval_rows(left, cdf[starts[f] + sym + 1] - left)
        pre.append((bits, rows2, s3, rows3, weights[f]))

    def enc(x):
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(x[2], cat, x[3])
        c.encode_reverse(x[0], cat, x[1])
        return c.get_compressed()

    def dec(x):
        c = constriction.stream.stack.AnsCoder(x[5])
        c.decode(cat, x[1])
        c.decode(cat, x[4])

    for i, x in enumerate(pre):  # words to decode: the bits, then symbols under the padded tables
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(np.zeros(len(x[4]), np.int32), cat, x[4])
        c.encode_reverse(x[0], cat, x[1])
        pre[i] = (*x, c.get_compressed())
    return {"ceiling_encode": best_rate(enc, pre, nnz), "ceiling_decode": best_rate(dec, pre, nnz),
            "activity_bits_per_latent": sum(len(x[0]) for x in pre) / nnz}


def planted_forest_codes(rng: np.random.Generator, n: int, d_sae: int = 16384, l0: float = 64.0) -> SparseCodes:
    """Chains of 4 features (t, t + D/4, t + D/2, t + 3D/4): a child fires with probability 0.7 when
    its parent does, 0.0002 otherwise; roots so that about l0 features fire per sample."""
    T = d_sae // 4
    p_root = l0 / (T * (1 + 0.7 + 0.49 + 0.343))
    parts = []
    for s in range(0, n, 1024):
        m = min(1024, n - s)
        on = np.zeros((m, d_sae), dtype=bool)
        on[:, :T] = rng.random((m, T)) < p_root
        for k in range(1, 4):
            par = on[:, (k - 1) * T:k * T]
            u = rng.random((m, T))
            on[:, k * T:(k + 1) * T] = np.where(par, u < 0.7, u < 0.0002)
        vals = rng.geometric(0.3, (m, d_sae)) * np.where(rng.random((m, d_sae)) < 0.2, -1, 1)
        parts.append(SparseCodes.from_dense(np.where(on, vals, 0).astype(np.int32)))
    return SparseCodes.concat(parts)


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
    fit_codes = q.quantise_sparse(*z_fit)
    codec = Codec(Decoder.from_sae(sae), q, EntropyModel.fit(fit_codes), encoder)
    coder = codec.chunk_coder
    coder.tables  # build the activity tables outside the timings
    t_sae = t_quant = t_enc = t_dec = t_rec = 0.0
    nnz = 0
    bits = 0
    parts = []
    for s in range(0, n, CHUNK):
        xs = x[s:s + CHUNK]
        z, dt = timed(encoder, xs); t_sae += dt
        codes, dt = timed(q.quantise_sparse, *z); t_quant += dt
        words, dt = timed(coder.encode, codes); t_enc += dt
        back, dt = timed(coder.decode, words, codes.n); t_dec += dt
        assert back == codes
        _, dt = timed(codec.reconstruct, back); t_rec += dt
        nnz += codes.nnz
        bits += 32 * len(words)
        parts.append(codes)
    total_enc = t_sae + t_quant + t_enc
    out = {"d_in": d_in, "d_sae": d_sae, "L0": nnz / n, "bits_per_sample": bits / n,
           "sae_encode_samples_per_s": n / t_sae, "quantise_samples_per_s": n / t_quant,
           "entropy_encode_samples_per_s": n / t_enc, "entropy_encode_latents_per_s": nnz / t_enc,
           "entropy_decode_samples_per_s": n / t_dec, "entropy_decode_latents_per_s": nnz / t_dec,
           "reconstruct_samples_per_s": n / t_rec,
           "encoder_total_samples_per_s": n / total_enc, "entropy_share_of_encoder": t_enc / total_enc,
           "decoder_total_samples_per_s": n / (t_dec + t_rec)}
    if d_sae >= 16384:
        model = codec.entropy_model
        out["flat"] = coder_rates(ChunkCoder(model), parts)
        forest = chow_liu(fit_codes)
        out["chow_liu"] = {"edges": forest.n_edges, **coder_rates(ChunkCoder(model.with_hierarchy(forest)), parts)}
        planted = planted_forest_codes(np.random.default_rng(1), 2 * n, d_sae)
        fit_p, test_p = row_slice(planted, 0, n), chunks(row_slice(planted, n, 2 * n))
        flat_p = EntropyModel.fit(fit_p)
        forest_p = chow_liu(fit_p)
        out["planted_flat"] = coder_rates(ChunkCoder(flat_p), test_p)
        out["planted_chow_liu"] = {"edges": forest_p.n_edges,
                                   **coder_rates(ChunkCoder(flat_p.with_hierarchy(forest_p)), test_p)}
    return out


def _rates_line(name: str, r: dict) -> str:
    edges = f" ({r['edges']} edges)" if "edges" in r else ""
    return (f"  {name + edges:38s} {r['encode'] / 1e6:5.2f} / {r['decode'] / 1e6:5.2f}"
            f"   old {r['old_encode'] / 1e6:5.2f} / {r['old_decode'] / 1e6:5.2f}"
            f"   ceiling {r['ceiling_encode'] / 1e6:5.2f} / {r['ceiling_decode'] / 1e6:5.2f}"
            f"   {r['bits_per_sample']:6.1f} bits/sample, {r['activity_bits_per_latent']:.1f} activity bits/latent")


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
        if "flat" in r:
            print(f"  chunk coder, M active latents per CPU second (best of {REPEATS}), encode / decode; old = the coder"
                  " before issue 13 (same streams); ceiling = constriction alone on the same symbols:")
            print(_rates_line("SAE codes, flat", r["flat"]))
            print(_rates_line("SAE codes, Chow-Liu", r["chow_liu"]))
            print(_rates_line("planted chains, flat", r["planted_flat"]))
            print(_rates_line("planted chains, Chow-Liu", r["planted_chow_liu"]))
            pf, pc = r["planted_flat"], r["planted_chow_liu"]
            print(f"  Chow-Liu / flat time on the planted chains: encode {pf['encode'] / pc['encode']:.2f}x, "
                  f"decode {pf['decode'] / pc['decode']:.2f}x (old coder {pf['old_encode'] / pc['old_encode']:.2f}x, "
                  f"{pf['old_decode'] / pc['old_decode']:.2f}x)")


if __name__ == "__main__":
    main()
