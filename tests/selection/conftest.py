"""Fixtures of the selection tests: the toy data and one real sweep on it, shared by the package's
files (package scope, so that the sweep runs once, as it did when these tests were one module)."""

from __future__ import annotations

import pytest

from mdlcodec.data import load_dataset
from mdlcodec.selection import run_selection, write_results
from tests.conftest import torch_on_one_thread
from tests.selection.helpers import TOY, toy_config


@pytest.fixture(scope="package")
def one_thread():
    """tests/conftest.py's one_thread for the whole package: the shared sweep below trains on one
    thread, as it did under the module-scoped fixture."""
    with torch_on_one_thread():
        yield


@pytest.fixture(scope="package")
def toy():
    return load_dataset(TOY)


@pytest.fixture(scope="package")
def sweep(one_thread, toy, tmp_path_factory):
    """One full sweep on the toy data: (run_dir, results, extra)."""
    run_dir = tmp_path_factory.mktemp("sel") / "run"
    results, extra = run_selection(toy, toy_config(), run_dir)
    write_results(results, extra, run_dir, toy.image_shape)
    return run_dir, results, extra
