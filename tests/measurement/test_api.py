"""The Python API of a notebook (issue 20 §2): SAE objects of the peer libraries, recognised by their
attributes, and activations in memory. The objects are built from ../shared/peers' files with the
attributes each library's class has (no peer library is installed here; where one is, its real
objects are tested too), and their latents checked against the numbers the peer itself computed."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import safetensors.torch
import torch

import mdlcodec
from mdlcodec.core.errors import MdlcodecError, ModelError
from mdlcodec.data.shards import ShardWriter
from mdlcodec.models.peers import convert_object
from tests.cli.helpers import run
from tests.models.helpers import assert_latents_match_up_to_ties, selection_boundary

pytestmark = pytest.mark.usefixtures("one_thread")


# --- stand-ins with the peers' attributes, holding the fixtures' tensors ------------------------------

@dataclasses.dataclass
class TopKSAEConfig:  # SAELens 6: the config's architecture() is a method, to_dict() its cfg.json
    d_in: int
    d_sae: int
    k: int
    apply_b_dec_to_input: bool = True
    rescale_acts_by_decoder_norm: bool = False
    dtype: str = "float32"
    device: str = "cpu"

    @staticmethod
    def architecture() -> str:
        return "topk"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "metadata": {"sae_lens_version": "6.54.12"}}


class TopKSAE(torch.nn.Module):
    def __init__(self, cfg, tensors):
        super().__init__()
        self.cfg = cfg
        for name, t in tensors.items():
            setattr(self, name, torch.nn.Parameter(t.clone()))


@dataclasses.dataclass
class CustomSAEConfig:  # SAEBench: architecture is a string
    d_in: int
    d_sae: int
    architecture: str = "topk"


class SAEBenchTopK(torch.nn.Module):
    def __init__(self, tensors, k):
        super().__init__()
        self.cfg = CustomSAEConfig(tensors["W_enc"].shape[0], tensors["W_enc"].shape[1])
        for name, t in tensors.items():
            setattr(self, name, torch.nn.Parameter(t.clone()))
        self.register_buffer("k", torch.tensor(k, dtype=torch.int))
        self.use_threshold = False


@dataclasses.dataclass
class SparseCoderConfig:
    activation: str = "topk"
    k: int = 16
    num_latents: int = 256
    expansion_factor: int = 32


class SparseCoder(torch.nn.Module):
    def __init__(self, tensors, d_in):
        super().__init__()
        self.cfg, self.d_in, self.num_latents = SparseCoderConfig(), d_in, tensors["W_dec"].shape[0]
        self.encoder = torch.nn.Linear(d_in, self.num_latents)
        self.encoder.load_state_dict({"weight": tensors["encoder.weight"], "bias": tensors["encoder.bias"]})
        self.W_dec = torch.nn.Parameter(tensors["W_dec"].clone())
        self.b_dec = torch.nn.Parameter(tensors["b_dec"].clone())


class BatchTopKSAE(torch.nn.Module):  # dictionary_learning: known by its class name
    def __init__(self, state):
        super().__init__()
        self.activation_dim, self.dict_size = state["b_dec"].shape[0], state["encoder.bias"].shape[0]
        self.encoder = torch.nn.Linear(self.activation_dim, self.dict_size)
        self.decoder = torch.nn.Linear(self.dict_size, self.activation_dim, bias=False)
        self.b_dec = torch.nn.Parameter(state["b_dec"].clone())
        self.register_buffer("k", state["k"].clone())
        self.register_buffer("threshold", state["threshold"].clone())
        self.load_state_dict(state)


def _objects(peers_dir) -> dict[str, tuple[object, str]]:
    """{kind: (object, the peer folder whose expected.npz it must reproduce)}."""
    out = {}
    sl = safetensors.torch.load_file(str(peers_dir / "saelens-topk" / "sae_weights.safetensors"))
    cfg = json.loads((peers_dir / "saelens-topk" / "cfg.json").read_text())
    out["saelens"] = (TopKSAE(TopKSAEConfig(cfg["d_in"], cfg["d_sae"], cfg["k"]), sl), "saelens-topk")
    out["saebench"] = (SAEBenchTopK(sl, cfg["k"]), "saelens-topk")  # the same formula: top k of relu(pre)
    sp = safetensors.torch.load_file(str(peers_dir / "sparsify-topk" / "sae.safetensors"))
    out["sparsify"] = (SparseCoder(sp, 784), "sparsify-topk")
    dl = torch.load(peers_dir / "dictionary_learning-batchtopk" / "ae.pt", weights_only=True)
    out["dictionary_learning"] = (BatchTopKSAE(dl), "dictionary_learning-batchtopk")
    out["dict"] = ({**{n: sl[n].to(torch.bfloat16 if n == "W_dec" else torch.float32) for n in sl}, "k": cfg["k"]},
                   "saelens-topk")
    return out


@pytest.mark.parametrize("kind", ["saelens", "saebench", "sparsify", "dictionary_learning", "dict"])
def test_objects_convert_to_what_the_peer_computes(peers_dir, kind):
    obj, folder = _objects(peers_dir)[kind]
    imported = convert_object(obj)
    assert imported.format == kind
    e = np.load(peers_dir / folder / "expected.npz")
    with torch.no_grad():
        z = imported.sae.encode(torch.from_numpy(e["x"])).numpy()
    rtol = 1e-2 if kind == "dict" else 1e-5  # the dict's decoder is bfloat16 (latents are not: W_enc is float32)
    assert_latents_match_up_to_ties(z, e["latents"], selection_boundary(imported.sae), rtol=rtol, atol=rtol)


def test_unknown_objects_and_bad_dicts_are_one_line(peers_dir):
    with pytest.raises(ModelError, match="not an SAE this version knows"):
        convert_object(object())
    with pytest.raises(ModelError, match="lacks W_dec, b_dec"):
        convert_object({"W_enc": torch.zeros(4, 8), "b_enc": torch.zeros(8)})
    bad = SAEBenchTopK(safetensors.torch.load_file(str(peers_dir / "saelens-topk" / "sae_weights.safetensors")), 16)
    bad.cfg.architecture = "gated"
    with pytest.raises(ModelError, match="SAEBench architecture 'gated' is not supported"):
        convert_object(bad)


def test_codec_fit_takes_a_saelens_object_and_a_tensor(peers_dir):
    """Codec.fit on a SAELens object failed with 'TopKSAEConfig' object has no attribute 'input_scale'."""
    obj, _ = _objects(peers_dir)["saelens"]
    x = torch.from_numpy(np.load(peers_dir / "saelens-topk" / "expected.npz")["x"]).to(torch.bfloat16)
    codec = mdlcodec.Codec.fit(obj, x[:150], 0.05)
    data = codec.encode(x[150:].float().numpy())
    assert codec.decode(data).shape == (len(x) - 150, 784)
    assert isinstance(obj.W_enc, torch.nn.Parameter) and obj.W_enc.dtype == torch.float32  # left as it was


def test_measure_in_memory_matches_the_cli(toy_model_dir, tmp_path):
    """mdlcodec.measure on an array gives measure --json's object, with the same figures."""
    from mdlcodec.models import load_sae

    model, ds = toy_model_dir
    x = np.concatenate([ds.train, ds.test])
    np.save(tmp_path / "x.npy", x)
    cli_result = json.loads(run("measure", model, tmp_path / "x.npy", "--max-fvu", "0.8", "--json").stdout)
    result = mdlcodec.measure({"m": load_sae(model)}, torch.from_numpy(x), max_fvu=0.8)
    assert set(result) == set(cli_result)
    assert [set(r) for r in result["rows"]] == [set(r) for r in cli_result["rows"]]
    ours = {r["method"]: r["file_bits"] for r in result["rows"]}
    assert set(ours) == {"sae", "pca"}
    theirs = {r["method"]: r["file_bits"] for r in cli_result["rows"]}
    assert ours == pytest.approx(theirs, rel=1e-9)
    batches = (torch.from_numpy(x[s:s + 500]).to(torch.bfloat16) for s in range(0, len(x), 500))
    again = mdlcodec.measure(load_sae(model), batches, max_fvu=0.8, pca=False, stored=False)
    assert again["data"]["n_test"] == result["data"]["n_test"] and again["rows"][0]["method"] == "sae"


def test_measure_takes_a_shard_folder_and_a_list_of_tolerances(toy_model_dir, tmp_path):
    from mdlcodec.models import load_sae

    model, ds = toy_model_dir
    folder = tmp_path / "shards"
    folder.mkdir()
    w = ShardWriter(folder, d=ds.d, shard_tokens=400)
    w.add(np.concatenate([ds.train, ds.test]))
    w.finish()
    result = mdlcodec.measure(load_sae(model), folder, max_fvu=0.8, pca=False)
    assert result["data"]["spec"] == str(folder) and result["rows"]
    with pytest.raises(MdlcodecError, match="one tolerance"):
        mdlcodec.measure(load_sae(model), folder, max_fvu=0.3, max_mse=0.1)
    curve = mdlcodec.measure(load_sae(model), folder, max_fvu=[0.8, 0.7], pca=False, stored=False)
    assert [r["max_fvu"] for r in curve["rows"]] == [0.8, 0.7]


def test_real_saelens_objects_when_installed(peers_dir):
    sae_lens = pytest.importorskip("sae_lens", reason="SAELens is not installed (not a dependency)")
    for name in ("saelens-topk", "saelens-jumprelu", "saelens-standard"):
        theirs = sae_lens.SAE.load_from_disk(str(peers_dir / name), device="cpu")
        sae = mdlcodec.as_sae(theirs)
        e = np.load(peers_dir / name / "expected.npz")
        with torch.no_grad():
            z = sae.encode(torch.from_numpy(e["x"])).numpy()
        assert_latents_match_up_to_ties(z, e["latents"], selection_boundary(sae))
