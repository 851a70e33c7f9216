"""mdlcodec.models.peers (issue 11): SAEs saved by SAELens, dictionary_learning and sparsify,
imported and checked against the peers' own outputs (../shared/peers, every folder), against the
peers' formulas on small files of every supported class, and mdlcodec SAEs exported to SAELens'
format and read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from mdlcodec.codec import Codec
from mdlcodec.core.errors import ModelError
from mdlcodec.models import SAEConfig, TrainConfig, load_sae, make_sae, save_sae, train_sae
from mdlcodec.models.io import CFG_FILE, WEIGHTS_FILE
from mdlcodec.models.peers import detect, export_saelens, import_peer, import_sae
from mdlcodec.models.peers.saelens import convert_saelens
from tests.conftest import peer_folders
from tests.models import peer_helpers as ph
from tests.models.helpers import assert_latents_match_up_to_ties, selection_boundary
from tests.models.test_encode_sparse import assert_sparse_matches_dense

pytestmark = pytest.mark.usefixtures("one_thread")

PEERS = peer_folders()
RTOL = ATOL = 1e-5  # float32: the peers' matmuls may sum in another order


def _encode_decode(sae, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(x))
        return z.numpy(), sae.decode(z).numpy()


# --- the peers' own outputs ------------------------------------------------------------------------

def test_peers_folders_are_there(peers_dir):
    assert {name.split("-")[0] for name in PEERS} == {"saelens", "dictionary_learning", "sparsify"}, PEERS
    for name in PEERS:
        assert (peers_dir / name / "expected.npz").is_file(), f"{name} has no expected.npz"


@pytest.mark.parametrize("name", PEERS)
def test_import_matches_the_peers_own_encode_and_decode(peers_dir, name):
    folder = peers_dir / name
    assert detect(folder) == name.split("-")[0]
    sae = import_sae(folder)
    e = np.load(folder / "expected.npz")
    z, recon = _encode_decode(sae, e["x"])
    swapped = assert_latents_match_up_to_ties(z, e["latents"], selection_boundary(sae))  # the same active latents
    np.testing.assert_allclose(recon[~swapped], e["recon"][~swapped], rtol=RTOL, atol=ATOL)
    assert_sparse_matches_dense(sae, torch.from_numpy(e["x"]))  # the codec's sparse form agrees bit for bit


@pytest.mark.parametrize("name", PEERS)
def test_imported_model_saves_loads_and_codes_exactly(peers_dir, name, tmp_path):
    folder = peers_dir / name
    save_sae(import_sae(folder), tmp_path / "m")
    sae = load_sae(tmp_path / "m")
    x = np.load(folder / "expected.npz")["x"]
    codec = Codec.fit(sae, x[:150], 0.05)
    data = codec.encode(x[150:], chunk_size=20)
    codes = codec.latents(x[150:], chunk_size=20)
    assert codec.decode_latents(data) == codes
    np.testing.assert_array_equal(codec.decode(data), codec.reconstruct(codes))
    z, recon = _encode_decode(sae, x[150:])
    assert np.mean((codec.decode(data) - recon) ** 2) < 1e-3 * np.var(recon, axis=0).sum() / recon.shape[1]
    # the codec encodes in batches of 20 rows, z in one: a pre-activation within a tie of its threshold
    # (saelens-jumprelu holds one 3.1e-6 from it) may turn on in one and not the other
    edge = selection_boundary(sae)
    with torch.no_grad():
        pre = sae.pre_acts(torch.from_numpy(x[150:])).numpy()
    near = 0 if edge is None else int((np.abs(pre - edge) <= 1e-5 * np.maximum(np.abs(edge), 1)).sum())
    assert codes.indices.size <= np.count_nonzero(z) + near


def test_dictionary_learning_topk_without_threshold_is_its_top_k(peers_dir):
    """The fixture's AutoEncoderTopK never estimated its threshold (-1): its thresholded encode is every
    positive latent; imported without the threshold, mdlcodec keeps each row's top k of those, which
    are the peer's own relu(pre) (its use_threshold=False encode)."""
    folder = peers_dir / "dictionary_learning-topk"
    imp = import_peer(folder)
    assert imp.sae.cfg.arch == "jumprelu" and "never estimated" in imp.warnings[0]
    topk = import_sae(folder, use_threshold=False)
    assert topk.cfg.arch == "topk" and topk.cfg.k == 16
    e = np.load(folder / "expected.npz")
    z, _ = _encode_decode(topk, e["x"])
    post = torch.from_numpy(e["latents"])  # relu(pre), the peer's own numbers
    top = post.topk(16, dim=1)
    expected = torch.zeros_like(post).scatter(1, top.indices, top.values).numpy()
    assert_latents_match_up_to_ties(z, expected)  # row 148's 16th and 17th are a float32 tie



def test_active_sets_are_compared_up_to_ties(peers_dir):
    """The tie this fixture holds (row 148: 16th and 17th largest 0.5557243 and 0.5557244), broken the
    other way as another CPU's summation order breaks it, passes; a latent swapped for one far from the
    boundary fails."""
    e = np.load(peers_dir / "dictionary_learning-topk" / "expected.npz")
    post = torch.from_numpy(e["latents"])
    ours = torch.zeros_like(post).scatter(1, *reversed(post.topk(16, dim=1))).numpy()
    theirs = ours.copy()
    order = np.argsort(-e["latents"][148])
    k16, k17 = order[15], order[16]
    assert abs(e["latents"][148, k16] - e["latents"][148, k17]) < 1e-6  # the tie is there
    theirs[148, k16], theirs[148, k17] = 0.0, e["latents"][148, k17]
    swapped = assert_latents_match_up_to_ties(ours, theirs)
    assert np.flatnonzero(swapped).tolist() == [148]
    far = order[30]  # well below the 16th
    theirs[148, k17], theirs[148, far] = 0.0, e["latents"][148, far]
    with pytest.raises(AssertionError, match="away from the boundary"):
        assert_latents_match_up_to_ties(ours, theirs)


@pytest.mark.parametrize("name", PEERS)
def test_import_matches_the_peer_in_another_summation_order(peers_dir, name):
    """Encoding in float64 (then rounding to float32) sums in another order, as another machine's BLAS
    does: the comparison with the peer's numbers still holds, up to ties."""
    sae = import_sae(peers_dir / name)
    e = np.load(peers_dir / name / "expected.npz")
    with torch.no_grad():
        z = sae.double().encode(torch.from_numpy(e["x"]).double()).float().numpy()
    assert_latents_match_up_to_ties(z, e["latents"], selection_boundary(sae))

# --- every supported class, on small files, against the peer's formula ------------------------------

SAELENS_CASES = {
    "standard": {"arch": "standard"},
    "standard, no b_dec on the input": {"arch": "standard", "cfg": {"apply_b_dec_to_input": False}},
    "topk": {"arch": "topk"},
    "topk rescaled by decoder norms": {"arch": "topk", "cfg": {"rescale_acts_by_decoder_norm": True}},
    "jumprelu": {"arch": "jumprelu"},
    "jumprelu, negative thresholds": {"arch": "jumprelu", "tensors": {"threshold": -torch.ones(ph.D_SAE)}},
    "hook_z reshaping": {"arch": "standard", "cfg": {"reshape_activations": "hook_z"}},
}


def _check(sae, z_ref: torch.Tensor, recon_ref: torch.Tensor, x: torch.Tensor) -> None:
    z, recon = _encode_decode(sae, x.numpy())
    swapped = assert_latents_match_up_to_ties(z, z_ref.numpy(), selection_boundary(sae))
    np.testing.assert_allclose(recon[~swapped], recon_ref.numpy()[~swapped], rtol=RTOL, atol=ATOL)
    assert_sparse_matches_dense(sae, x)


@pytest.mark.parametrize("case", list(SAELENS_CASES))
def test_saelens_classes_match_saelens_formulas(case, tmp_path):
    d = ph.write_saelens(tmp_path / "s", **SAELENS_CASES[case])
    cfg = json.loads((d / "cfg.json").read_text())
    w = safetensors.torch.load_file(str(d / "sae_weights.safetensors"))
    x = ph.inputs()
    assert detect(d) == "saelens"
    _check(import_sae(d), *ph.saelens_reference(w, cfg, x), x)


def test_saelens_pre_6_topk_config_and_jumprelu_log_threshold(tmp_path):
    old = ph.write_saelens(tmp_path / "old", "topk", cfg={"metadata": {}, "sae_lens_version": "3.1.0",
                                                          "activation_fn_str": "topk",
                                                          "activation_fn_kwargs": {"k": ph.K}})
    cfg = json.loads((old / "cfg.json").read_text())
    del cfg["architecture"], cfg["k"]
    (old / "cfg.json").write_text(json.dumps(cfg))
    sae = import_sae(old)
    assert sae.cfg.arch == "topk" and sae.cfg.k == ph.K
    w = safetensors.torch.load_file(str(old / "sae_weights.safetensors"))
    x = ph.inputs()
    _check(sae, *ph.saelens_reference(w, {"architecture": "topk", "k": ph.K}, x), x)
    log = ph.write_saelens(tmp_path / "log", "jumprelu", tensors={"log_threshold": ph.thresholds().log()},
                           drop=("threshold",))
    np.testing.assert_allclose(import_sae(log).threshold.numpy(), ph.thresholds().numpy(), rtol=1e-6)


@pytest.mark.parametrize("cls", ph.DL_CLASSES)
@pytest.mark.parametrize("threshold", [0.3, -1.0])
def test_dictionary_learning_classes_match_its_formulas(cls, threshold, tmp_path):
    d = ph.write_dictionary_learning(tmp_path / "dl", cls, threshold=threshold)
    s = torch.load(d / "ae.pt", weights_only=True)
    x = ph.inputs()
    imp = import_peer(d)
    assert imp.format == "dictionary_learning" and imp.peer_class == cls
    assert imp.sae.cfg.apply_b_dec_to_input == (cls != "JumpReluAutoEncoder")
    thresholded = cls in ("AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE")
    assert bool(imp.warnings) == (threshold < 0 and thresholded)
    _check(imp.sae, *ph.dictionary_learning_reference(s, cls, x), x)
    if cls == "AutoEncoderTopK":
        _check(import_sae(d, use_threshold=False), *ph.dictionary_learning_reference(s, cls, x, use_threshold=False), x)
    else:
        with pytest.raises(ModelError, match="import it with its threshold"):
            import_sae(d, use_threshold=False)


def test_sparsify_matches_its_formula(tmp_path):
    d = ph.write_sparsify(tmp_path / "sp")
    t = safetensors.torch.load_file(str(d / "sae.safetensors"))
    x = ph.inputs()
    assert detect(d) == "sparsify"
    _check(import_sae(d), *ph.sparsify_reference(t, ph.K, x), x)
    # num_latents 0: d_in * expansion_factor latents
    wide = 2 * ph.D_IN
    d0 = ph.write_sparsify(tmp_path / "sp0", cfg={"num_latents": 0, "expansion_factor": 2},
                           tensors={"encoder.weight": torch.zeros(wide, ph.D_IN), "encoder.bias": torch.zeros(wide),
                                    "W_dec": torch.zeros(wide, ph.D_IN)})
    assert import_sae(d0).cfg.d_sae == 2 * ph.D_IN


def test_half_precision_weights_convert(tmp_path):
    w = {n: t.to(torch.bfloat16) for n, t in ph.weights().items()}
    d = ph.write_saelens(tmp_path / "bf16", tensors=w)
    sae = import_sae(d)
    assert sae.W_enc.dtype == torch.float32
    assert torch.equal(sae.W_enc, w["W_enc"].float())


BAD = {  # what is wrong -> (writer, expected words of the one-line error)
    "no known format": (lambda d: (d.mkdir(), (d / "notes.txt").write_text("hi")), "no SAE in a known format"),
    "missing tensor": (lambda d: ph.write_saelens(d, drop=("b_enc",)), "lacks tensor(s) b_enc"),
    "missing weights file": (lambda d: (ph.write_saelens(d), (d / "sae_weights.safetensors").unlink()),
                             "sae_weights.safetensors is missing"),
    "missing field": (lambda d: ph.write_sparsify(d, cfg={"d_in": None}), "lacks the field 'd_in'"),
    "wrong shape": (lambda d: ph.write_saelens(d, tensors={"W_enc": torch.zeros(ph.D_SAE, ph.D_IN)}),
                    "W_enc has shape [10, 6], expected [6, 10]"),
    "NaN weights": (lambda d: ph.write_sparsify(d, tensors={"W_dec": torch.full((ph.D_SAE, ph.D_IN), float("nan"))}),
                    "W_dec holds NaN"),
    "integer weights": (lambda d: ph.write_saelens(d, tensors={"b_dec": torch.zeros(ph.D_IN, dtype=torch.int32)}),
                        "b_dec is torch.int32"),
    "unknown dict_class": (lambda d: ph.write_dictionary_learning(d, "AutoEncoder",
                                                                  trainer={"dict_class": "GatedAutoEncoder"}),
                           "dict_class 'GatedAutoEncoder' is not supported"),
    "unknown architecture": (lambda d: ph.write_saelens(d, "gated"), "architecture 'gated' is not supported"),
    "training architecture": (lambda d: ph.write_saelens(d, "batchtopk"), "save_inference_model"),
    "per-sample normalisation": (lambda d: ph.write_saelens(d, cfg={"normalize_activations": "layer_norm"}),
                                 "layer_norm"),
    "groupmax": (lambda d: ph.write_sparsify(d, cfg={"activation": "groupmax"}), "groupmax"),
    "transcoder": (lambda d: ph.write_sparsify(d, cfg={"transcode": True}), "transcoder"),
    "ae.pt with an object": (lambda d: ph.write_dictionary_learning(d, "AutoEncoder", state={"extra": _Unsafe()}),
                             "holds a tests.models.test_peers._Unsafe object"),
    "ae.pt with a number": (lambda d: ph.write_dictionary_learning(d, "AutoEncoder", state={"step": 3}),
                            "not tensors (step)"),
    "ae.pt not a torch file": (lambda d: (ph.write_dictionary_learning(d, "AutoEncoder"),
                                          (d / "ae.pt").write_bytes(b"not a pickle at all")), "weights_only=True"),
    "ae.pt missing": (lambda d: (ph.write_dictionary_learning(d, "AutoEncoder"), (d / "ae.pt").unlink()),
                      "ae.pt is missing"),
    "group sizes": (lambda d: ph.write_dictionary_learning(d, "MatryoshkaBatchTopKSAE",
                                                           state={"group_sizes": torch.tensor([4, 4])}), "group_sizes"),
    "k beyond width": (lambda d: ph.write_saelens(d, "topk", cfg={"k": 50}), "k <= width"),
    "expected_average_only_in without its factor": (lambda d: ph.write_saelens_checkpoint(d, scaling_factor=None),
                                                   "no activation_scaler.json"),
    "activation_scaler.json without a number": (lambda d: ph.write_saelens_checkpoint(d, scaling_factor=0),
                                                "scaling_factor is 0"),
    "covariance whitening": (lambda d: ph.write_saelens(d, cfg={"normalize_activations": "covariance_whitening"}),
                             "'covariance_whitening' is a SAELens training checkpoint's"),
}


class _Unsafe:
    """Not a tensor: torch.load(weights_only=True) must refuse to build it."""


@pytest.mark.parametrize("what", list(BAD))
def test_bad_input_is_one_model_error(what, tmp_path):
    write, words = BAD[what]
    d = tmp_path / "peer"
    write(d)
    with pytest.raises(ModelError) as e:
        import_sae(d)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_an_mdlcodec_model_is_not_imported(tmp_path):
    save_sae(make_sae(SAEConfig("topk", 4, 8, k=2)), tmp_path / "m")
    with pytest.raises(ModelError, match="mdlcodec model already"):
        detect(tmp_path / "m")


SAELENS_CHECKPOINTS = {"standard": ("standard", {}), "topk rescaled by decoder norms": ("topk", {}),
                       "jumprelu": ("jumprelu", {}), "no b_dec on the input": ("standard", {"apply_b_dec_to_input": False}),
                       "an older file's true": ("standard", {"normalize_activations": True})}


@pytest.mark.parametrize("case", list(SAELENS_CHECKPOINTS))
def test_saelens_checkpoint_with_expected_average_only_in_takes_raw_activations(case, tmp_path):
    """Issue 19 §10: SAELens trains on x * s (s in activation_scaler.json) and folds s into the weights
    when training ends; the import folds it the same way, so on raw x it computes what SAELens' folded
    SAE computes, which is the trainer's SAE on x * s with its output divided by s."""
    arch, cfg = SAELENS_CHECKPOINTS[case]
    s = 0.13
    d = ph.write_saelens_checkpoint(tmp_path / "ckpt", arch, s, cfg)
    saved = json.loads((d / "cfg.json").read_text())
    w = safetensors.torch.load_file(str(d / "sae_weights.safetensors"))
    x = 8 * ph.inputs() + 2  # raw activations, on a scale of their own
    imp = import_peer(d)
    assert "scaling factor 0.13 from activation_scaler.json is folded" in imp.warnings[0]
    z_fold, r_fold = ph.saelens_reference(ph.saelens_fold_scaling_factor(w, s), saved, x)
    _check(imp.sae, z_fold, r_fold, x)
    z_train, r_train = ph.saelens_reference(w, saved, x * s)  # what the trainer computed
    rescaled = saved.get("rescale_acts_by_decoder_norm", False)
    torch.testing.assert_close(z_fold, z_train / s if rescaled else z_train, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(r_fold, r_train / s, rtol=RTOL, atol=ATOL)
    bare = ph.write_saelens(tmp_path / "bare", arch, cfg={k: v for k, v in cfg.items() if k != "normalize_activations"})
    z_bare, _ = _encode_decode(import_sae(bare), x.numpy())
    assert not np.allclose(z_bare, z_fold.numpy(), rtol=RTOL, atol=ATOL)  # the fold is not a no-op here
    with pytest.raises(ModelError, match=r"fold_activation_norm_scaling_factor\(factor\) and convert that"):
        convert_saelens(saved, lambda: w, "the object", "the object")  # an object in memory: no factor beside it


def test_saelens_itself_folds_a_checkpoint_as_the_import_does(tmp_path):
    """With SAELens installed (it is not a dependency): its load_from_disk and
    fold_activation_norm_scaling_factor on the checkpoint's files compute what the import computes."""
    sae_lens = pytest.importorskip("sae_lens")
    x = 8 * ph.inputs() + 2
    for arch in ("standard", "topk", "jumprelu"):
        d = ph.write_saelens_checkpoint(tmp_path / arch, arch, 0.13)
        theirs = sae_lens.SAE.load_from_disk(str(d), device="cpu")
        assert theirs.cfg.normalize_activations == "expected_average_only_in"
        theirs.fold_activation_norm_scaling_factor(0.13)
        with torch.no_grad():
            z = theirs.encode(x)
            _check(import_sae(d), z, theirs.decode(z), x)


# --- export to SAELens, and back ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    from mdlcodec.data import load_dataset

    return load_dataset("toy:n=2000,n_features=24,d=12,l0=2")


@pytest.fixture(scope="module")
def trained(toy):
    """Tiny SAEs trained by mdlcodec (2 epochs): input_scale != 1, so export must fold it in."""
    out = {}
    for arch, kw in (("batchtopk", {"k": 2}), ("topk", {"k": 2}), ("relu", {"l1_coeff": 0.05})):
        out[arch], _ = train_sae(SAEConfig(arch, 12, 24, **kw), toy.train, None,
                                 TrainConfig(progress=False, epochs=2, seed=0))
    return out


@pytest.mark.parametrize("arch, saelens_arch", [("batchtopk", "jumprelu"), ("topk", "topk"), ("relu", "standard")])
def test_export_round_trip(trained, toy, arch, saelens_arch, tmp_path, peers_fields):
    sae = trained[arch]
    assert sae.cfg.input_scale != 1.0
    out = export_saelens(sae, tmp_path / "exported")
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == saelens_arch
    assert set(cfg) == peers_fields[saelens_arch]  # the fields SAELens 6 writes
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6  # read as a v6 file
    tensors = safetensors.torch.load_file(str(out / "sae_weights.safetensors"))
    s = sae.cfg.input_scale
    assert cfg["metadata"]["mdlcodec_input_scale"] == pytest.approx(s)
    assert cfg["metadata"]["model_name"] is None and cfg["metadata"]["hook_name"] is None  # none given
    if arch == "batchtopk":
        assert torch.allclose(tensors["threshold"], torch.tensor(sae.cfg.threshold / s))
    # SAELens' and SAEBench's convention: unit-norm decoder rows (mdlcodec trains them so), the scale
    # moved into the latents
    torch.testing.assert_close(tensors["W_dec"].norm(dim=1), torch.ones(sae.cfg.d_sae), rtol=1e-4, atol=1e-4)
    back = import_sae(out)
    assert back.cfg.arch == {"batchtopk": "jumprelu"}.get(arch, arch) and back.cfg.input_scale == 1.0
    x = np.ascontiguousarray(toy.test, np.float32)
    z0, r0 = _encode_decode(sae, x)
    z1, r1 = _encode_decode(back, x)
    z0 = z0 / np.float32(s)  # the exported latents are the SAE's divided by its input scale
    edge = selection_boundary(back)
    swapped = assert_latents_match_up_to_ties(z1, z0, edge)  # the folded scale sums in another order
    np.testing.assert_allclose(r1[~swapped], r0[~swapped], rtol=RTOL, atol=ATOL)
    ref_z, ref_r = ph.saelens_reference(tensors, cfg, torch.from_numpy(x))  # SAELens' formulas on the files
    swapped = assert_latents_match_up_to_ties(ref_z.numpy(), z0, edge)
    np.testing.assert_allclose(ref_r.numpy()[~swapped], r0[~swapped], rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def peers_fields():
    """cfg.json's field set per SAELens architecture, as SAELens 6 writes it (../shared/peers/saelens-*,
    else the same fields written out)."""
    from tests.conftest import peers_root

    base = {"d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations",
            "reshape_activations", "metadata", "architecture"}
    fields = {"standard": base, "jumprelu": base, "topk": base | {"k", "rescale_acts_by_decoder_norm"}}
    for arch, name in (("standard", "saelens-standard"), ("jumprelu", "saelens-jumprelu"), ("topk", "saelens-topk")):
        p = peers_root() / name / "cfg.json"
        if p.is_file():
            assert set(json.loads(p.read_text())) == fields[arch]
    return fields


@pytest.mark.parametrize("name", [n for n in PEERS if n.startswith("saelens")])
def test_export_of_an_imported_saelens_sae_gives_back_its_tensors(peers_dir, name, tmp_path):
    folder = peers_dir / name
    out = export_saelens(import_sae(folder), tmp_path / "again")
    original = safetensors.torch.load_file(str(folder / "sae_weights.safetensors"))
    again = safetensors.torch.load_file(str(out / "sae_weights.safetensors"))
    assert set(again) == set(original)
    for n in original:
        assert torch.equal(again[n], original[n]), n
    a, b = json.loads((folder / "cfg.json").read_text()), json.loads((out / "cfg.json").read_text())
    assert {k: v for k, v in a.items() if k != "metadata"} == {k: v for k, v in b.items() if k != "metadata"}


def test_export_refuses_a_tree_and_an_existing_sae(trained, tmp_path):
    tree = make_sae(SAEConfig("tree", 4, 6, k=2), parents=np.array([-1, 0, 0, -1, 3, 3]))
    with pytest.raises(ModelError, match="no counterpart of mdlcodec's tree"):
        export_saelens(tree, tmp_path / "t")
    assert not (tmp_path / "t").exists()
    export_saelens(trained["topk"], tmp_path / "e")
    with pytest.raises(ModelError, match="already holds") as e:
        export_saelens(trained["relu"], tmp_path / "e")
    assert e.value.param == "overwrite"
    export_saelens(trained["relu"], tmp_path / "e", overwrite=True)
    assert json.loads((tmp_path / "e" / "cfg.json").read_text())["architecture"] == "standard"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]  # no temporary files left


def test_saelens_itself_loads_the_export(trained, toy, tmp_path):
    """With SAELens installed (it is not a dependency), its own loader reads the export and computes the same."""
    sae_lens = pytest.importorskip("sae_lens")
    x = np.ascontiguousarray(toy.test, np.float32)
    for arch, sae in trained.items():
        out = export_saelens(sae, tmp_path / arch)
        theirs = sae_lens.SAE.load_from_disk(str(out), device="cpu")
        with torch.no_grad():
            z = theirs.encode(torch.from_numpy(x))
            r = theirs.decode(z)
        z0, r0 = _encode_decode(sae, x)
        z0 = z0 / np.float32(sae.cfg.input_scale)  # exported latents: divided by the input scale
        swapped = assert_latents_match_up_to_ties(z.numpy(), z0, selection_boundary(import_sae(out)))
        np.testing.assert_allclose(r.numpy()[~swapped], r0[~swapped], rtol=RTOL, atol=ATOL)


# --- the config flag and the jumprelu architecture ---------------------------------------------------

def test_apply_b_dec_to_input_is_saved_only_when_false(tmp_path):
    on = make_sae(SAEConfig("topk", 4, 8, k=2))
    assert "apply_b_dec_to_input" not in on.cfg.to_dict()  # the config file of existing models unchanged
    off = make_sae(SAEConfig("topk", 4, 8, k=2, apply_b_dec_to_input=False))
    with torch.no_grad():
        off.b_dec.fill_(5.0)
    save_sae(off, tmp_path / "m")
    assert json.loads((tmp_path / "m" / CFG_FILE).read_text())["apply_b_dec_to_input"] is False
    back = load_sae(tmp_path / "m")
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    assert back.cfg.apply_b_dec_to_input is False
    assert torch.equal(back.pre_acts(x), x @ back.W_enc + back.b_enc)
    with pytest.raises(ModelError, match="true or false"):
        make_sae(SAEConfig("topk", 4, 8, k=2, apply_b_dec_to_input="no"))


def test_jumprelu_saves_loads_and_refuses_training_without_objective_mdl(tmp_path):
    sae = make_sae(SAEConfig("jumprelu", 4, 8))
    assert torch.equal(sae.threshold, torch.zeros(8))  # a fresh one is a ReLU SAE
    with torch.no_grad():
        sae.threshold.copy_(torch.linspace(-0.5, 1.0, 8))
    save_sae(sae, tmp_path / "m")
    back = load_sae(tmp_path / "m")
    assert torch.equal(back.threshold, sae.threshold)
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(back.encode(x), sae.encode(x))
    with pytest.raises(ModelError, match="trains jumprelu SAEs only with objective mdl"):
        train_sae(SAEConfig("jumprelu", 4, 8), x.numpy(), None, TrainConfig(progress=False, epochs=1))
    w = safetensors.torch.load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    del w["threshold"]
    safetensors.torch.save_file(w, str(tmp_path / "m" / WEIGHTS_FILE))
    with pytest.raises(ModelError, match="lacks weight.*threshold"):
        load_sae(tmp_path / "m")


def test_jumprelu_sparse_form_with_ties_and_nan():
    sae = make_sae(SAEConfig("jumprelu", 4, 8), torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        sae.threshold.copy_(torch.tensor([0.0, 0.1, -1.0, 0.2, 0.2, 0.5, float("inf"), 0.3]))
        sae.b_enc.fill_(0.2)  # latents 3 and 4 sit at their threshold for x = b_dec: off
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
    x[0] = sae.b_dec
    x[1, 0] = float("nan")
    assert_sparse_matches_dense(sae, x)
    with torch.no_grad():
        z = sae.encode(x)
    assert not bool(z[:, 6].any()) and not bool(z[0, 3:5].any()) and not bool(z[1].any())
