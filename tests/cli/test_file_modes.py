"""Issue 19 §9: what mdlcodec writes gets the umask's modes, folders 0777 and files 0666 less the
umask (core.atomic's mechanism), not mkstemp's 0600 and mkdtemp's 0700: save_sae into a new folder
and into an existing one, import, export, train with fit-codec and harvest, under umask 022 and 077."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mdlcodec.models import SAEConfig, make_sae, save_sae
from mdlcodec.models.io import CFG_FILE
from mdlcodec.models.peers import export_saelens
from tests.cli.helpers import run
from tests.models import peer_helpers as ph

TOY = "toy:n=2000,n_features=24,d=12,l0=2"


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def assert_modes(root: Path, mask: int) -> int:
    """Every folder under root (root too) is 0777 & ~mask and every file 0666 & ~mask; returns how many files."""
    wrong, files = [], 0
    for p in [root, *sorted(root.rglob("*"))]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        want = 0o777 & ~mask if p.is_dir() else 0o666 & ~mask
        files += p.is_file()
        if mode != want:
            wrong.append(f"{p.relative_to(root.parent)} {mode:o} (expected {want:o})")
    assert not wrong, wrong
    assert files, f"nothing written under {root}"
    return files


def test_save_sae_into_a_new_and_an_existing_folder(umask, tmp_path):
    sae = make_sae(SAEConfig("topk", 6, 10, k=3))
    save_sae(sae, tmp_path / "deep" / "m")  # its parent is made too
    assert assert_modes(tmp_path / "deep" / "m", umask) == 2
    (tmp_path / "deep" / "m" / CFG_FILE).chmod(0o600)
    save_sae(sae, tmp_path / "deep" / "m")  # each file replaced in the existing folder
    assert_modes(tmp_path / "deep" / "m", umask)
    export_saelens(sae, tmp_path / "sl")
    assert_modes(tmp_path / "sl", umask)
    export_saelens(sae, tmp_path / "sl", overwrite=True)
    assert_modes(tmp_path / "sl", umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "sl"]  # no temporary folder left


def test_import_train_fit_codec_and_export(umask, tmp_path):
    src = ph.write_saelens(tmp_path / "peer", "topk")
    assert run("import", src, "-o", tmp_path / "imported").exit_code == 0
    assert_modes(tmp_path / "imported", umask)
    r = run("train", TOY, "--width", 24, "--k", 2, "--epochs", 2, "-o", tmp_path / "trained")
    assert r.exit_code == 0, r.output
    assert assert_modes(tmp_path / "trained", umask) >= 3  # the SAE, and its codec tables from fit-codec
    assert run("export", tmp_path / "trained", "-o", tmp_path / "exported").exit_code == 0
    assert_modes(tmp_path / "exported", umask)


def test_harvest(umask, tmp_path):
    pytest.importorskip("transformers", reason="harvest needs transformers (the [lm] extra); not installed")
    from mdlcodec.data.harvest import harvest
    from tests.data.lm_helpers import make_model, sentences

    model = make_model(tmp_path / "lm")
    text = tmp_path / "text.txt"
    text.write_text("\n\n".join(sentences(10)) + "\n", encoding="utf-8")
    harvest(model, 1, tmp_path / "acts", [text], max_length=12, batch_size=3, shard_tokens=20, progress=False)
    assert assert_modes(tmp_path / "acts", umask) >= 3  # the manifest and at least two shards
