"""MDL model selection of SAEs (the paper's Appendix C): calibrate k per width at a test-MSE
tolerance, quantise as coarsely as the tolerance allows, measure description length from real
files, select the shortest, and draw the paper's Figure 2. Uses the codec, never the reverse; may
import core, data, theory, models, codec, baselines and workflow, through their public names."""

from mdlcodec.selection.measure import (
           feature_density,
           measure_codec,
           measure_pca,
           measure_sae,
)
from mdlcodec.selection.pipeline import SelectionConfig, run_selection
from mdlcodec.selection.results import write_results
from mdlcodec.selection.sweep import SAECache, calibrate_width

__all__ = ["SAECache", "SelectionConfig", "calibrate_width", "feature_density", "measure_codec", "measure_pca",
           "measure_sae", "run_selection", "write_results"]
