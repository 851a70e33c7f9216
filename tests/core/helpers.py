"""Test helpers of the core layer, shared with the layers above."""

from __future__ import annotations

import numpy as np


# 0 -> 1 -> 2 -> 3 (a chain), 4 -> {5, 6}, 7.. roots
PARENTS = np.array([-1, 0, 1, 2, -1, 4, 4] + [-1] * 9, dtype=np.int64)
