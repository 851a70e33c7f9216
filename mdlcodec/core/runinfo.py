"""What a result was made with: the machine and the versions of what decides the figures."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """Where the timings were taken: platform, processor, logical cores, torch threads."""
    import numpy as np
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__}


def versions() -> dict:
    """Versions of what decides the results (constriction has no __version__: ask its package metadata)."""
    from importlib import metadata

    import numpy as np
    import torch

    from mdlcodec import __version__

    try:
        constriction_version = metadata.version("constriction")
    except metadata.PackageNotFoundError:
        constriction_version = "unknown"
    return {"mdlcodec": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "constriction": constriction_version, "python": platform.python_version()}
