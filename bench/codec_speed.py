"""Codec throughput on one core: SAE matmul time apart from entropy-coding time, flat and Chow-Liu
coding, format version 3 against version 2 in the same run, and how close the coder comes to
constriction alone.

    python bench/codec_speed.py [--samples 8192]

Settings (issues 3, 13 and 21): d=784, D=1024 and d=768, D=16384, each a TopK SAE with L0=64 (random
unit-norm dictionary: speed does not depend on training), inputs from the synthetic LM-like
generator (d=768) or Gaussian (d=784). The quantiser step is a sixteenth of the median active
value (about 5 bits per value). Prints samples/s and active latents/s for each stage, and the
share of entropy coding in the encoder's total time (wall clock). Chunks of 4,096 samples.

At D=16384 the chunk coder alone is then timed in CPU seconds (time.process_time, best of three
passes over the test chunks: the figures hold on a shared machine) in format version 3 and in
version 2, decoding with the check every file decode makes (the words are those the encoder writes
for what they decode to), next to constriction alone on version 3's symbols. Bits per sample of
both versions on the same codes, and the coded activity symbols per active latent (version 3:
occupancy patterns and forest bits; version 2: binary decisions).

Chow-Liu: a forest fit with ``hierarchy.chow_liu`` on the fit codes. A random SAE's latents share
little information, hence a second code set at D=16384 with planted structure: 4,096 chains of 4
features (a child fires with 70% probability when its parent does, 0.02% otherwise; L0 about 64),
where Chow-Liu finds a forest of depth 3.

"constriction ceiling": constriction alone coding the same version-3 symbols, precomputed, with
the calls the format needs: one per active node of the tree with its model (patterns), one for the
forest bits (two-symbol rows), values in one call of three-symbol rows of their exact intervals to
encode and one call per active feature with its model to decode; no check.

Targets (issue 21): at D=16384, L0=64, >= 3e6 active latents per CPU second decoding (the check
included) and >= 4e6 encoding, Chow-Liu at most 1.5x the flat time.
"""

from __future__ import annotations

import argparse
import platform
import time

import constriction
import numpy as np
import torch

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.entropy.activity import activity_decisions
from mdlcodec.codec.entropy.hierarchy import chow_liu
from mdlcodec.codec.entropy.occupancy import ContextPatterns, Patterns, occupancy_symbols
from mdlcodec.codec.format.bitstream import ChunkCoder, _interval_rows
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.models import SAEConfig, make_sae

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


def coder_rates(model: EntropyModel, parts: list[SparseCodes]) -> dict:
    """Encode and decode rates (active latents per CPU second) of the chunk coder in format versions 3
    and 2 (decoding includes each version's check that the words are what the encoder writes), and of
    constriction alone on version 3's symbols (``ceiling``)."""
    nnz = sum(p.nnz for p in parts)
    out = {"activity_bits_per_latent_v2": sum(len(np.concatenate([b for b, _ in activity_decisions(p, model.activity_tables).steps]))
                                              for p in parts) / nnz}
    for v in (3, 2):
        coder = ChunkCoder(model, v)
        coder.model.activity_tables, coder.model.occupancy_tables, coder.model.value_models, coder.model.value_cdf  # noqa: B018 (built outside the timings)
        words = [coder.encode(p) for p in parts]
        assert all(coder.decode(w, p.n) == p for w, p in zip(words, parts))
        coded = list(zip(words, [p.n for p in parts]))
        out[f"v{v}"] = {"encode": best_rate(coder.encode, parts, nnz),
                        "decode": best_rate(lambda wp: coder.decode(*wp), coded, nnz),
                        "bits_per_sample": 32 * sum(len(w) for w in words) / sum(p.n for p in parts)}
    out.update(ceiling(ChunkCoder(model, 3), parts, nnz))
    return out


def ceiling(coder: ChunkCoder, parts: list[SparseCodes], nnz: int) -> dict:
    """constriction alone on each chunk's version-3 symbols, precomputed (see the module docstring)."""
    cat = constriction.stream.model.Categorical(perfect=False)
    m = coder.model
    starts, cdf = m.value_cdf
    pre = []
    for p in parts:
        occ = occupancy_symbols(p, m.occupancy_tables)
        ops = []  # the activity's calls in decoding order: (model, masks) per node, or (None, symbols, rows)
        for step in occ.steps:
            if isinstance(step, Patterns):
                ops.extend(step.runs())
            elif isinstance(step, ContextPatterns):
                ops.extend((None, masks, rows) for masks, rows in step.batches())
            elif len(step.symbols):
                ops.append((None, step.symbols, step.rows))
        order = np.argsort(p.indices, kind="stable")
        f = p.indices[order]
        sym = m.value_symbols(f, p.bins[order])
        left = cdf[starts[f] + sym]
        s3, rows3 = _interval_rows(left, cdf[starts[f] + sym + 1] - left)
        counts = np.bincount(f, minlength=m.d_sae)
        active = np.flatnonzero(counts)
        values = ([m.value_models[g] for g in active.tolist()], counts[active].tolist())
        pre.append((ops, s3, rows3, values, occ.symbol_count()))

    def enc(x):
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(x[1], cat, x[2])
        for op in reversed(x[0]):
            if op[0] is None:
                c.encode_reverse(op[1], cat, op[2])
            else:
                c.encode_reverse(op[1], op[0])
        return c.get_compressed()

    def dec(x):
        c = constriction.stream.stack.AnsCoder(x[5])
        for op in x[0]:
            if op[0] is None:
                c.decode(cat, op[2])
            else:
                c.decode(op[0], len(op[1]))
        list(map(c.decode, *x[3]))

    pre = [(*x, enc(x)) for x in pre]
    symbols = sum(x[4] for x in pre)
    return {"ceiling_encode": best_rate(enc, pre, nnz), "ceiling_decode": best_rate(dec, pre, nnz),
            "activity_symbols_per_latent": symbols / nnz}


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
        out["flat"] = coder_rates(model, parts)
        forest = chow_liu(fit_codes)
        out["chow_liu"] = {"edges": forest.n_edges, **coder_rates(model.with_hierarchy(forest), parts)}
        planted = planted_forest_codes(np.random.default_rng(1), 2 * n, d_sae)
        fit_p, test_p = row_slice(planted, 0, n), chunks(row_slice(planted, n, 2 * n))
        flat_p = EntropyModel.fit(fit_p)
        forest_p = chow_liu(fit_p)
        out["planted_flat"] = coder_rates(flat_p, test_p)
        out["planted_chow_liu"] = {"edges": forest_p.n_edges, **coder_rates(flat_p.with_hierarchy(forest_p), test_p)}
    return out


def _rates_line(name: str, r: dict) -> str:
    edges = f" ({r['edges']} edges)" if "edges" in r else ""
    v3, v2 = r["v3"], r["v2"]
    return (f"  {name + edges:34s} v3 {v3['encode'] / 1e6:5.2f} / {v3['decode'] / 1e6:5.2f}"
            f"   ceiling {r['ceiling_encode'] / 1e6:5.2f} / {r['ceiling_decode'] / 1e6:5.2f}"
            f"   v2 {v2['encode'] / 1e6:5.2f} / {v2['decode'] / 1e6:5.2f}"
            f"   bits/sample v3 {v3['bits_per_sample']:7.1f} v2 {v2['bits_per_sample']:7.1f}"
            f" ({100 * (v3['bits_per_sample'] / v2['bits_per_sample'] - 1):+.2f}%)"
            f"   activity symbols/latent v3 {r['activity_symbols_per_latent']:.2f} v2 {r['activity_bits_per_latent_v2']:.1f}")


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
            print(f"  chunk coder, M active latents per CPU second (best of {REPEATS}), encode / decode (decoding"
                  " includes the check that the words are the encoder's); ceiling = constriction alone on the"
                  " same version-3 symbols; v2 = the coder of format version 2, timed in the same run:")
            for key, name in (("flat", "SAE codes, flat"), ("chow_liu", "SAE codes, Chow-Liu"),
                              ("planted_flat", "planted chains, flat"), ("planted_chow_liu", "planted chains, Chow-Liu")):
                print(_rates_line(name, r[key]))
            pf, pc = r["planted_flat"], r["planted_chow_liu"]
            for v in ("v3", "v2"):
                print(f"  Chow-Liu / flat time on the planted chains, {v}: encode {pf[v]['encode'] / pc[v]['encode']:.2f}x, "
                      f"decode {pf[v]['decode'] / pc[v]['decode']:.2f}x")

if __name__ == "__main__":
    main()
