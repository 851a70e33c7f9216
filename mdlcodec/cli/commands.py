"""Imports every command module; each attaches its commands to the `mdlcodec` group."""

from mdlcodec.cli import (
    bench_cmd,  # noqa: F401
    codec_cmd,  # noqa: F401
    data_cmd,  # noqa: F401
    demo_cmd,  # noqa: F401
    dl_cmd,  # noqa: F401
    hierarchy_cmd,  # noqa: F401
    select_cmd,  # noqa: F401
    train_cmd,  # noqa: F401
)
