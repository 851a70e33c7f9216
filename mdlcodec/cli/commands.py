"""Imports every command module; each attaches its commands to the `mdlcodec` group."""

from mdlcodec.cli import codec_cmd  # noqa: F401
from mdlcodec.cli import data_cmd  # noqa: F401
from mdlcodec.cli import dl_cmd  # noqa: F401
from mdlcodec.cli import train_cmd  # noqa: F401
from mdlcodec.cli import demo_cmd  # noqa: F401
from mdlcodec.cli import bench_cmd  # noqa: F401
from mdlcodec.cli import select_cmd  # noqa: F401
from mdlcodec.cli import hierarchy_cmd  # noqa: F401
