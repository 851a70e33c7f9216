"""The main job on the embedded default: train an SAE on the synthetic toy model of superposition,
check it against the ground truth, and make a real round trip through an .mdlc file.

Returns figures only; the `mdlcodec demo` command prints them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_SPEC = "toy"


CURVE_FVU = (1.1, 1.5, 2.0, 3.0)
"""The rate-distortion curve's tolerances, as multiples of the SAE's own test FVU."""


def run_demo(out_dir: str | Path, device: str = "cpu", seed: int = 0, progress: bool = True,
             curve: bool = False) -> dict:
    """Train, evaluate, fit the codec, encode the test split to a file, decode it; report the figures.

    Writes out_dir/model (the SAE and its codec tables), out_dir/test.npy, out_dir/test.mdlc and
    out_dir/test_decoded.npy. Bits are per sample of the test split. With ``curve``, also the SAE's
    and PCA's file bits at FVU tolerances of CURVE_FVU times the SAE's own (``measure``'s
    measurement.compare.measure_saes) and their plot, out_dir/rd.png.
    """
    from mdlcodec.codec import Codec, decode_file, encode_file, inspect_file
    from mdlcodec.codec.codec import DEFAULT_CHUNK
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, evaluate, feature_recovery
    from mdlcodec.workflow import train_codec

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(DEMO_SPEC)
    truth = ds.truth
    n_true = truth.directions.shape[0]
    k = max(1, round(float(truth.probs.sum())))
    cfg = SAEConfig(arch="batchtopk", d_in=ds.d, d_sae=n_true, k=k)
    model_dir = out / "model"
    tc = train_codec(cfg, ds.train, ds.test, TrainConfig(seed=seed, device=device, progress=progress), model_dir,
                     overwrite=True)
    sae, fit = tc.sae, tc.codec_report
    ev = evaluate(sae, ds.test)

    test_path, mdlc_path, recon_path = out / "test.npy", out / "test.mdlc", out / "test_decoded.npy"
    for p in (test_path, mdlc_path, recon_path):
        p.unlink(missing_ok=True)
    np.save(test_path, ds.test)
    codec = Codec.load(model_dir, device)
    encode_file(codec, np.load(test_path, mmap_mode="r"), mdlc_path, inputs=(test_path,))
    decode_file(mdlc_path, recon_path, codec)
    info = inspect_file(mdlc_path, codec, ds.test)
    exact = bool(np.array_equal(np.load(recon_path), codec.reconstruct(codec.latents(ds.test, chunk_size=DEFAULT_CHUNK))))
    extra = {}
    if curve:
        from mdlcodec.measurement.compare import measure_saes
        from mdlcodec.measurement.plots import plot_rate_distortion

        tols = [min(1.0, round(m * ev["fvu"], 4)) for m in CURVE_FVU]
        res = measure_saes([("sae", str(model_dir), sae)], ds, max_fvu=sorted(set(tols)), device=device, stored=False)
        extra = {"curve": [{"method": r["method"], "max_fvu": r["max_fvu"], "fvu": r["fvu"], "file_bits": r["file_bits"]}
                           for r in res["rows"]],
                 "plot": str(plot_rate_distortion(res, out / "rd.png"))}
    return {
        "data": ds.name, "true_features": n_true, "true_l0": float(truth.probs.sum()),
        "sae": {"arch": cfg.arch, "width": cfg.d_sae, "k": k},
        "test_mse": ev["mse"], "test_fvu": ev["fvu"], "l0": ev["l0_mean"], "alive": ev["alive"],
        "recovered_fraction": feature_recovery(sae.W_dec.detach().cpu().numpy(), truth.directions),
        "step": fit["step"],
        "file": str(mdlc_path), "file_bytes": info["bytes"],
        "bits_per_sample": {k: info["bits_per_sample"][k] for k in
                            ("file", "payload", "activity", "values", "cross_entropy")}
                           | {"model_entropy": info["model_entropy_bits_per_sample"]["total"]},
        "decoder_bits": info["decoder_bits"],
        "true_activity_entropy_bits_per_sample": truth.entropy_bits_per_sample(),
        "quantised_mse": info["mse"], "quantised_fvu": info["fvu"],
        "decoded_exactly": exact, **extra,
    }
