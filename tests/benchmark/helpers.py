"""Test helpers of the benchmark layer, shared with the CLI tests."""

from __future__ import annotations


TOY = "toy:n=1500,n_features=24,d=12,l0=2"
