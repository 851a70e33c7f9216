"""`mdlcodec import`, `export`: SAEs saved by SAELens, dictionary_learning or sparsify in, mdlcodec
SAEs out in SAELens' format (mdlcodec.models.peers)."""

from __future__ import annotations

import json
from pathlib import Path

import click

_folder = click.Path(path_type=Path)


def _same_folder(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and a.resolve() == b.resolve()


@click.command("import")
@click.argument("path", type=_folder)
@click.option("-o", "--output", type=_folder, required=True, help="mdlcodec model directory to write.")
@click.option("--no-threshold", "no_threshold", is_flag=True,
              help="dictionary_learning AutoEncoderTopK: import its top-k encode (use_threshold=False) instead of "
                   "its thresholded one.")
@click.option("--force", is_flag=True, help="Replace the SAE already in OUTPUT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def import_cmd(path: Path, output: Path, no_threshold: bool, force: bool, as_json: bool) -> None:
    """Convert the SAE a peer library saved in folder PATH into an mdlcodec model in OUTPUT. The format
    is recognised from the files: SAELens (cfg.json + sae_weights.safetensors: standard, topk, jumprelu),
    dictionary_learning (ae.pt + config.json: AutoEncoder, AutoEncoderTopK, BatchTopKSAE,
    MatryoshkaBatchTopKSAE, JumpReluAutoEncoder) or EleutherAI sparsify (cfg.json + sae.safetensors).
    Then fit its codec tables with `mdlcodec fit-codec OUTPUT DATA`."""
    from mdlcodec.core.errors import ModelError
    from mdlcodec.models import save_sae
    from mdlcodec.models.peers import import_peer
    from mdlcodec.workflow import check_model_output

    if _same_folder(path, output):
        raise ModelError(f"refusing to write the import into its source folder {path}: choose another output")
    check_model_output(output, force)
    imp = import_peer(path, use_threshold=not no_threshold)
    save_sae(imp.sae, output)
    c = imp.sae.cfg
    for line in imp.warnings:  # the library names its argument; here the flag is what the user can pass
        click.echo(f"warning: {line.replace('use_threshold=False', '--no-threshold')}", err=True)
    if as_json:
        click.echo(json.dumps({"source": str(path), "format": imp.format, "peer_class": imp.peer_class,
                               "model": str(output), "architecture": c.arch, "d_in": c.d_in, "d_sae": c.d_sae,
                               "config": c.to_dict(), "warnings": imp.warnings}))
        return
    click.echo(f"{imp.format} {imp.peer_class} SAE (d_in {c.d_in}, width {c.d_sae}) -> mdlcodec {c.arch} SAE in "
               f"{output}; fit its codec tables with `mdlcodec fit-codec {output} DATA`")


@click.command("export")
@click.argument("model", type=_folder)
@click.option("--to", "fmt", type=click.Choice(["saelens"]), default="saelens", show_default=True,
              help="Format to write.")
@click.option("-o", "--output", type=_folder, required=True, help="Folder to write.")
@click.option("--activations", type=_folder,
              help="The shard folder (`mdlcodec harvest`) the SAE was trained on: its model and layer become "
                   "cfg.json's metadata.model_name and hook_name (else null).")
@click.option("--force", is_flag=True, help="Replace the SAE already in OUTPUT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def export_cmd(model: Path, fmt: str, output: Path, activations: Path | None, force: bool, as_json: bool) -> None:
    """Write the mdlcodec SAE in MODEL in a peer's format: SAELens 6 (cfg.json + sae_weights.safetensors;
    topk, batchtopk as jumprelu with its threshold on every latent, relu as standard, jumprelu), with
    the input scale folded in so that it computes the same on raw inputs with unit-norm decoder rows
    (the latents are divided by the scale, recorded as metadata.mdlcodec_input_scale)."""
    from mdlcodec.core.errors import ModelError
    from mdlcodec.models import load_sae
    from mdlcodec.models.peers import export_saelens
    from mdlcodec.models.peers.saelens import export_architecture

    if _same_folder(model, output):
        raise ModelError(f"refusing to export into the model's own folder {model}: choose another output")
    provenance = None
    if activations is not None:
        from mdlcodec.data.harvest import saelens_provenance
        from mdlcodec.data.shards import read_manifest

        provenance = saelens_provenance(read_manifest(activations))
    sae = load_sae(model)
    export_saelens(sae, output, overwrite=force, provenance=provenance)
    arch = export_architecture(sae.cfg)
    if as_json:
        click.echo(json.dumps({"model": str(model), "format": fmt, "output": str(output), "architecture": arch,
                               "from_architecture": sae.cfg.arch}))
        return
    click.echo(f"mdlcodec {sae.cfg.arch} SAE -> SAELens {arch} SAE in {output}")
