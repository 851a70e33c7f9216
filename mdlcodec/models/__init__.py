"""SAE architectures behind one registry, their training, evaluation, and save/load. Knows nothing
of bits; may import core and data. Which library saved a folder is ``formats.py``, read by both
``io.py`` and the peers' importers (``peers/``).

Add an architecture by writing a module with an `SAE` subclass decorated `@register("name")` and
importing it below.
"""

from mdlcodec.models import batchtopk, jumprelu, relu, topk, tree  # noqa: F401  (register the architectures)
from mdlcodec.models.base import ARCHITECTURES, SAE, SAEConfig, make_sae, register
from mdlcodec.models.evaluate import evaluate, feature_recovery
from mdlcodec.models.io import load_sae, save_sae
from mdlcodec.models.train import TrainConfig, TrainResult, train_sae
from mdlcodec.models.tree import TreeSAE, grow_forest, tree_from_flat

__all__ = ["ARCHITECTURES", "SAE", "SAEConfig", "make_sae", "register", "evaluate", "feature_recovery", "load_sae", "save_sae",
           "TrainConfig", "TrainResult", "train_sae", "TreeSAE", "grow_forest", "tree_from_flat"]
