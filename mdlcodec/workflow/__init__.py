"""The one train -> save -> fit-codec sequence that every command, experiment, sweep, bench and test
fixture uses (``trained_codec``). Sits above models and codec and below measurement, selection, benchmark,
experiments and cli; may import core, data, models and codec."""

from mdlcodec.workflow.trained_codec import (
    TrainedCodec,
    check_model_output,
    fit_and_save,
    train_and_save,
    train_codec,
)

__all__ = ["TrainedCodec", "check_model_output", "fit_and_save", "train_and_save", "train_codec"]
