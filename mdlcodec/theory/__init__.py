"""The paper's formulas and calculators: description lengths by Eq. 1, dense and one-hot codes
(Appendix B), feature splitting (Figure 3) and hierarchy (Figure 5), two-part code terms. Pure
arithmetic on numbers: imports only core."""

from mdlcodec.theory.formulas import (
    PAPER_ONEHOT_BITS,
    DLBreakdown,
    HierarchyDL,
    OneHotDL,
    SplittingDL,
    binary_entropy,
    decoder_bits,
    dl_bound_sparse,
    dl_dense,
    dl_onehot,
    entropy_bits,
    feature_splitting_dl,
    hierarchy_dl,
    splitting_joint,
    splitting_phase_boundary,
    splitting_rho_min,
    tree_dl,
    two_part_bits_per_sample,
)

__all__ = ['PAPER_ONEHOT_BITS', 'binary_entropy', 'entropy_bits', 'DLBreakdown', 'dl_bound_sparse', 'dl_dense',
    'OneHotDL', 'dl_onehot', 'splitting_rho_min', 'splitting_joint', 'SplittingDL', 'feature_splitting_dl',
    'splitting_phase_boundary', 'HierarchyDL', 'hierarchy_dl', 'tree_dl', 'decoder_bits', 'two_part_bits_per_sample']
