"""The bench: every method (stored floats, int8 + general-purpose compressors, PCA transform coding,
SAE codecs) on one dataset at a matched distortion. ``timing`` measures one method, ``runner`` runs
them all, ``report`` writes the results. May import core, data, models, codec, baselines, theory."""

from mdlcodec.baselines import distortion
from mdlcodec.benchmark.report import markdown_table, plot_rd, write_results
from mdlcodec.benchmark.runner import (
                                       PAPER_MNIST_MAX_MSE,
                                       SAEEntry,
                                       bench_sae_config,
                                       default_max_mse,
                                       run_benchmark,
                                       train_bench_sae,
)
from mdlcodec.benchmark.timing import measure

__all__ = ["PAPER_MNIST_MAX_MSE", "SAEEntry", "bench_sae_config", "default_max_mse", "distortion", "markdown_table",
           "measure", "plot_rd", "run_benchmark", "train_bench_sae", "write_results"]
