"""Entropy coding of the quantised latents: the tables (``entropy_model.py``: per-feature activity
and value counts, one integer rule from counts to probabilities), which features are active in
format version 3 (``occupancy.py``, the chunk's symbols, over the trees of ``occupancy_tree.py``)
and in versions 1 and 2 (``activity.py``), and feature forests with their Chow-Liu fit
(``hierarchy.py``). Imports the sparse codes and the quantiser's limits, nothing of the file format."""
