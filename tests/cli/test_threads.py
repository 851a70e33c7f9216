"""Issue 10, friction 6: every command that trains or encodes with torch runs on one thread unless
--threads says otherwise (torch's default threads made `train mnist` 9 times slower on a busy
2-core machine), through one option defined in mdlcodec.cli.options."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.cli.options import DEFAULT_THREADS


@pytest.mark.parametrize("command", ["train", "fit-codec", "encode", "select", "bench", "demo", "hierarchy"])
def test_threads_option_defaults_to_one(command):
    (opt,) = [p for p in cli.commands[command].params if p.name == "threads"]
    assert opt.default == DEFAULT_THREADS == 1 and opt.show_default
    assert "idle machine" in opt.help
    assert opt.type.min == 1


def test_a_command_runs_on_one_thread_by_default_and_on_threads_if_asked(toy_model_dir):
    model, _ = toy_model_dir
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        r = CliRunner().invoke(cli, ["hierarchy", str(model), "toy:n=3000,n_features=24,d=12,l0=2", "--top", "2"])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 1
        r = CliRunner().invoke(cli, ["hierarchy", str(model), "toy:n=3000,n_features=24,d=12,l0=2", "--top", "2",
                                     "--threads", "2"])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
