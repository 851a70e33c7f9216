"""A drop-in for SAEBench's MDL eval (sae_bench/evals/mdl/main.py) whose description lengths are
measured files, not histogram estimates.

    from mdlcodec.measurement.saebench import MDLEvalConfig, run_eval
    cfg = MDLEvalConfig(activations="runs/acts", num_bins_values=[8, 16, 32], k_values=[None])
    run_eval(cfg, [("my-sae", sae)], "cpu", "eval_results/mdl")

Same call shape as SAEBench's ``run_eval(config, selected_saes, device, output_path, force_rerun)``
and the same JSON per SAE (``OUTPUT_PATH/<release>_<id>_eval_results.json``): eval_type_id "mdl",
eval_config, eval_results [{num_bins, k, description_length, within_threshold, mse_loss}, ...],
eval_artifacts, sae_cfg_dict, plus the ids and versions. ``selected_saes``: (name, SAE object) pairs
(any object models.peers.objects converts) or (name, folder) pairs (an mdlcodec model or a peer's
folder); SAELens' (release, id) pairs need the model hub, which this eval does not reach.

Each (num_bins, k) of SAEBench's grid, as SAEBench does it: every feature's range [0, max] (the
largest latent on the training split) cut into num_bins bins, and with k the top k latents of each
token kept. Then, unlike SAEBench, the test split is coded into a real .mdlc file under tables fit on
the training split, decoded, and measured:

- description_length: the file's bits per token (every byte); SAEBench's estimate on the same
  latents and bins is beside it as description_length_estimate (bits per token: per feature, the
  entropy of active-or-not plus P(active) times the entropy of the histogram of its values);
- mse_loss: SAEBench's tolerance quantity, sqrt(MSE) / d_in of the decoded reconstruction (MSE the
  mean over tokens and dimensions), and within_threshold: mse_loss < mse_epsilon_threshold;
- one more entry per k with num_bins null: the coarsest single step meeting the tolerance
  (``measure``'s plain code), its bins then num_bins_equivalent (the widest feature's range / step).

The tolerance is SAEBench's mse_epsilon_threshold, or max_fvu or max_mse when set (each converted
to the others and written in eval_config). Differences from SAEBench, and why: bins are centred on
multiples of the step (0 is its own bin, so inactive stays inactive) where SAEBench reconstructs at
bin midpoints; the range is the observed maximum where SAEBench floors it at 100 (which leaves few
bins in use for latents of unit scale); activations come from ``config.activations`` (a dataset spec,
a shard folder written by ``mdlcodec harvest``, or a tensor) instead of a transformer run on a hub
dataset; the DL counts the real code's bits, tables, header and all, not an entropy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mdlcodec import __version__
from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.codec.sae_batches import latents_in_chunks
from mdlcodec.codec.sparse import SparseCodes, SparseLatents
from mdlcodec.core.atomic import write_text
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.data.inmemory import as_dataset
from mdlcodec.measurement.compare import tolerance
from mdlcodec.measurement.measure import measure_codec, measure_sae
from mdlcodec.models.peers import as_sae

EVAL_TYPE = "mdl"


@dataclass
class MDLEvalConfig:
    """SAEBench's MDLEvalConfig fields (model and dataset names are recorded, not used), plus where
    the activations come from and the tolerance on FVU or MSE in place of mse_epsilon_threshold."""

    k_values: list[int | None] = field(default_factory=lambda: [16, 24, 32])
    num_bins_values: list[int] = field(default_factory=lambda: [4, 6, 8, 12, 16, 32])
    random_seed: int = 42
    dataset_name: str = "HuggingFaceFW/fineweb"
    context_length: int = 128
    sae_batch_size: int = 64
    model_name: str = "pythia-70m-deduped"
    llm_dtype: str = "float32"
    mse_epsilon_threshold: float = 0.01
    activations: Any = None
    max_fvu: float | None = None
    max_mse: float | None = None


def _top_k(encoder, k: int | None):
    """The codec's encoder keeping each row's k largest latents (all with k None)."""
    if k is None:
        return encoder

    def encode(x: np.ndarray) -> SparseLatents:
        values, indices = encoder(x)
        if values.shape[1] <= k:
            return SparseLatents(values, indices)
        top = np.argpartition(-values, k - 1, axis=1)[:, :k]
        return SparseLatents(np.take_along_axis(values, top, 1), np.take_along_axis(indices, top, 1))
    encode.data_stats = getattr(encoder, "data_stats", None)
    return encode


def _max_latents(z: SparseLatents, d_sae: int) -> np.ndarray:
    """[d_sae] the largest latent of each feature in z (0 where it never fires)."""
    top = np.zeros(d_sae, np.float32)
    np.maximum.at(top, z.indices.ravel(), z.values.ravel())
    return top


def saebench_estimate(codes: SparseCodes, num_bins: int) -> float:
    """SAEBench's description length on these codes, bits per token: the sum over features of the
    binary entropy of being active plus P(active) times the entropy of the active values' bins."""
    n = max(codes.n, 1)
    total = 0.0
    order = np.argsort(codes.indices, kind="stable")
    feats, bins = codes.indices[order], codes.bins[order]
    starts = np.flatnonzero(np.r_[True, np.diff(feats) != 0]) if len(feats) else np.array([], int)
    for a, b in zip(starts, np.r_[starts[1:], len(feats)]):
        p = (b - a) / n
        h_bool = 0.0 if p in (0.0, 1.0) else -p * math.log2(p) - (1 - p) * math.log2(1 - p)
        _, counts = np.unique(np.minimum(bins[a:b], num_bins), return_counts=True)
        q = counts / counts.sum()
        q = q[(q > 0) & (q < 1)]
        total += h_bool + p * float(-(q * np.log2(q)).sum())
    return total


def _entry(m: dict, d_in: int, eps: float, num_bins, k, codes_test: SparseCodes) -> dict:
    """One eval_results entry from measure_codec's figures ``m`` of the test split and its codes."""
    mse_loss = math.sqrt(m["quantised_test_mse"]) / d_in
    return {"num_bins": num_bins, "k": k, "description_length": m["file_bits"],
            "within_threshold": bool(mse_loss < eps), "mse_loss": mse_loss,
            "description_length_estimate": float(saebench_estimate(codes_test, num_bins or 1 << 30)),
            "payload_bits": m["payload_bits"], "cross_entropy_bits": m["cross_entropy_bits"]["total"],
            "fvu": m["quantised_fvu"], "l0": m["quantised_l0"]}


def run_eval_single_sae(config: MDLEvalConfig, sae, ds, device: str = "cpu") -> list[dict]:
    """The eval_results list of one SAE (this module's docstring) on Dataset ``ds``."""
    sae = as_sae(sae)
    d_in, d_sae = sae.cfg.d_in, sae.cfg.d_sae
    eps = _epsilon(config, ds)
    base = Codec.sae_sparse_encoder(sae, device)
    decoder = Decoder.from_sae(sae)
    out = []
    for k in config.k_values:
        encoder = _top_k(base, k)
        z_train, z_test = (latents_in_chunks(encoder, x, d_in, what, DEFAULT_CHUNK)
                           for x, what in ((ds.train, "training data"), (ds.test, "test data")))
        top = _max_latents(z_train, d_sae)
        for num_bins in config.num_bins_values:
            q = Quantiser(np.where(top > 0, top / num_bins, 1.0).astype(np.float32))
            codec = Codec(decoder, q, EntropyModel.fit(q.quantise_sparse(*z_train)), encoder, device=device)
            out.append(_entry(measure_codec(codec, ds.test), d_in, eps, num_bins, k, q.quantise_sparse(*z_test)))
        if k is None:
            try:
                codec, m = measure_sae(sae, ds.train, ds.test, (eps * d_in) ** 2, device)
            except MdlcodecError as e:
                if getattr(e, "param", None) != "max_mse":
                    raise
                out.append({"num_bins": None, "k": k, "description_length": None, "within_threshold": False,
                            "mse_loss": None, "reason": str(e)})
                continue
            e = _entry(m, d_in, eps, None, k, codec.quantise(z_test))
            e["num_bins_equivalent"] = float(top.max() / codec.quantiser.step[0]) if top.max() > 0 else 0.0
            out.append(e)
    return out


def _epsilon(config: MDLEvalConfig, ds) -> float:
    """SAEBench's threshold on sqrt(MSE) / d_in, from max_fvu or max_mse when one is set."""
    if config.max_fvu is not None or config.max_mse is not None:
        return math.sqrt(tolerance(ds.test, config.max_mse, config.max_fvu)["max_mse"]) / ds.d
    return float(config.mse_epsilon_threshold)


def _load(name: str, obj: Any):
    if isinstance(obj, (str, Path)) and Path(obj).is_dir():
        from mdlcodec.models import load_sae
        from mdlcodec.models.peers import detect, import_sae

        try:
            detect(obj)
        except MdlcodecError:
            return load_sae(obj)  # an mdlcodec model folder
        return import_sae(obj)
    if isinstance(obj, str):
        raise MdlcodecError(f"{name}/{obj}: SAELens (release, id) pairs are fetched from the model hub, which "
                            "this eval does not reach; pass (name, SAE object) or (name, folder)")
    return as_sae(obj)


def run_eval(config: MDLEvalConfig, selected_saes: list[tuple[str, Any]], device: str, output_path: str | Path,
             force_rerun: bool = False) -> dict[str, Any]:
    """SAEBench's run_eval, measured (this module's docstring). Writes one JSON per SAE under
    output_path (skipped when present, unless force_rerun); returns {"<name>_<id>": eval_results, ...,
    "custom_eval_config": config}."""
    if config.activations is None:
        raise MdlcodecError("MDLEvalConfig.activations is not set: give a dataset spec, a shard folder "
                            "(mdlcodec harvest) or a tensor of activations")
    ds = as_dataset(config.activations)
    out_dir = Path(output_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_config = {**dataclasses.asdict(config), "activations": ds.spec}
    eps = _epsilon(config, ds)
    eval_config["mse_epsilon_threshold"] = eps
    results: dict[str, Any] = {}
    instance = str(uuid.uuid4())
    for release, obj in selected_saes:
        sae_id = Path(obj).name if isinstance(obj, (str, Path)) else type(obj).__name__
        path = out_dir / f"{release}_{sae_id}_eval_results.json"
        if path.exists() and not force_rerun:
            continue
        sae = _load(release, obj)
        if sae.cfg.d_in != ds.d:
            raise MdlcodecError(f"SAE {release} takes inputs of width {sae.cfg.d_in}, the activations have width {ds.d}")
        rows = run_eval_single_sae(config, sae, ds, device)
        record = {"eval_instance_id": instance, "sae_lens_release": release, "sae_lens_id": sae_id,
                  "eval_type_id": EVAL_TYPE, "sae_lens_version": None, "sae_bench_version": None,
                  "mdlcodec_version": __version__, "date_time": datetime.now().isoformat(),
                  "eval_config": eval_config, "eval_results": rows, "eval_artifacts": {"artifacts": "None"},
                  "sae_cfg_dict": {**sae.cfg.to_dict(), "architecture": sae.cfg.arch}}
        write_text(path, json.dumps(record, indent=4) + "\n")
        results[f"{release}_{sae_id}"] = rows
    results["custom_eval_config"] = eval_config
    return results
