"""mdlcodec.core.forest: the depths of a feature forest, and one-line refusals of what is not one."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.core.errors import ModelError
from mdlcodec.core.forest import forest_depths
from mdlcodec.models import SAEConfig, make_sae
from tests.core.helpers import PARENTS


def test_forest_depths():
    assert forest_depths(PARENTS).tolist() == [0, 1, 2, 3, 0, 1, 1] + [0] * 9
    assert forest_depths(np.array([-1, -1])).tolist() == [0, 0]
    assert forest_depths(np.zeros(0, np.int64)).tolist() == []


@pytest.mark.parametrize("parents, msg", [
    ([1, 2, 0, -1], "cycle"),
    ([-1, 2, 1, -1], "cycle"),
    ([-1, 1, 0, 0], "feature 1 is its own parent"),
    ([-1, 4, 0, 0], "parents[1] = 4"),
    ([-1, -2, 0, 0], "parents[1] = -2"),
    ([-1, 0.5, 0, 0], "integers"),
])
def test_bad_forests_are_refused_with_one_line(parents, msg):
    with pytest.raises(ModelError) as e:
        forest_depths(np.array(parents))
    assert msg in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelError):
        make_sae(SAEConfig("tree", 4, 4, k=2), parents=parents)
