"""Activation data: files (.npy memory-mapped, .npz, .safetensors, .pt), MNIST's IDX files and the
synthetic toy model of superposition, all named by one dataset spec string (``spec``); the fixed
train/test split and the checks every array goes through. May import core only."""

from mdlcodec.data.dataset import Dataset, array_stats, check_finite, split_index
from mdlcodec.data.files import load_activations
from mdlcodec.data.mnist import load_mnist, mnist_dir_default
from mdlcodec.data.spec import SPLITS, describe, load_dataset, load_rows, spec_paths
from mdlcodec.data.toy import PRESETS, SparseActivity, ToyConfig, ToyTruth, make_toy

__all__ = ["Dataset", "PRESETS", "SparseActivity", "ToyConfig", "ToyTruth", "array_stats", "check_finite",
           "describe", "load_activations", "load_dataset", "load_rows", "spec_paths", "SPLITS", "load_mnist", "make_toy", "mnist_dir_default",
           "split_index"]
