"""`mdlcodec dl`: the paper's calculators through the command line, text and JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mdlcodec.cli.main import cli


@pytest.mark.parametrize("args, total, text", [
    (["bound", "--l0", "65", "--width", "25000", "--bits", "7"], 1404.63, "1,405"),
    (["dense", "--d", "768", "--bits", "7"], 5376.0, "5376.00"),
    (["onehot", "--vocab", "50257", "--seq", "128", "--bits", "7"], 2005.98, "13,993"),
])
def test_dl_cli_text_and_json(args, total, text):
    r = CliRunner().invoke(cli, ["dl", *args])
    assert r.exit_code == 0, r.output
    assert f"{total:.2f}" in r.output and text in r.output
    j = json.loads(CliRunner().invoke(cli, ["dl", *args, "--json"]).output)
    got = j["eq1"]["total_bits"] if "eq1" in j else j["total_bits"]
    assert got == pytest.approx(total, abs=0.005)


def test_dl_onehot_note_and_bad_width():
    r = CliRunner().invoke(cli, ["dl", "onehot", "--json"])
    j = json.loads(r.output)
    assert j["paper_printed"] == 13_993 and "product" in j["note"]
    r = CliRunner().invoke(cli, ["dl", "bound", "--width", "-5"])
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "width" in lines[0]
