"""The selection tests' toy data and configuration, shared by their files, their conftest and the CLI tests."""

from __future__ import annotations

from mdlcodec.selection import SelectionConfig


# 32 true features in 24 dimensions, L0 6, all equally frequent: narrower SAEs cannot meet the
# tolerance, wider ones split features and pay for it.
TOY = "toy:n_features=32,d=24,l0=6,alpha=0,n=4000"


TRUE_WIDTH = 32


WIDTHS = (8, 16, 32, 64, 128)


TOL = 0.003


def toy_config(widths=WIDTHS, **kw) -> SelectionConfig:
    return SelectionConfig(tol=TOL, widths=widths, epochs=30, batch_size=64, **kw)
