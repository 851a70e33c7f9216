"""Which features are active: coded by splitting the feature range in halves.

The features 0..d_sae-1 are the leaves of a complete binary tree (heap numbering: root 1, children
of node h are 2h and 2h+1, leaf of feature f is P + f with P = 2**L >= d_sae; leaves past d_sae are
padding, never active). A node is active in a sample when any feature below it is. For each sample
the coder sends: the root's bit; then, for every active node, its left child's bit, and its right
child's bit only if the left child was active (otherwise the right one must be). With independent
features of probability p_f, every coded bit has an exact conditional probability:

    q_h = P(node h active) = 1 - prod_{f below h} (1 - p_f)
    root:            P = q_1
    left child h:    P(h active | parent active)                    = q_h / q_parent
    right child h:   P(h active | parent active, left sibling active) = q_h     (independence)

so by the chain rule a sample costs exactly sum_f H(p_f) bits in expectation, with O(L0 log d_sae)
coded bits instead of d_sae.

Determinism. The probabilities come from the integer counts by integer arithmetic only:
  u_leaf = floor((2N + 1 - 2 a_f) * 2**32 / (2N + 2))   (1 - p_f in 32-bit fixed point; 2**32 for padding)
  u_h    = floor(u_2h * u_2h+1 / 2**32)                 (1 - q_h)
  q_h    = 2**32 - u_h
  prob[h] (24-bit fixed point, clamped to [1, 2**24 - 1]):
      h even (left child): floor(q_h * 2**24 / q_parent)   (1 where q_parent = 0)
      h odd (root, right): floor(q_h / 2**8)
The coder receives prob[h] / 2**24, an exactly representable float64.

Coding order, the same for a whole chunk of n samples (breadth first, so each level is one
vectorised call): root bits of all n samples; then for each level from the top, the left bits of
all active nodes at that level in (sample, node) order, then the right bits of those whose left bit
was 1. A node at level l of sample r has the key (r << l) | position; its parent's key is key >> 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdlcodec.codec.sparse import SparseCodes

FIXED_BITS = 24
_ONE = 1 << 32


@dataclass(frozen=True)
class ActivityTables:
    """prob: [2P] float64, the probability with which node h's bit is coded (index 0 unused)."""

    levels: int  # L, depth of the leaves
    prob: np.ndarray

    @classmethod
    def from_counts(cls, active_counts: np.ndarray, n_samples: int) -> "ActivityTables":
        d = len(active_counts)
        levels = max(0, (d - 1).bit_length())
        size = 1 << levels
        n = int(n_samples)
        u = np.empty(2 * size, dtype=object)
        u[size:size + d] = [((2 * n + 1 - 2 * int(a)) << 32) // (2 * n + 2) for a in active_counts]
        u[size + d:] = _ONE
        u[0] = _ONE  # unused slot
        for lvl in range(levels - 1, -1, -1):
            h = np.arange(1 << lvl, 2 << lvl)
            u[h] = (u[2 * h] * u[2 * h + 1]) >> 32
        q = _ONE - u
        fixed = np.zeros(2 * size, dtype=object)
        fixed[1] = q[1] >> (32 - FIXED_BITS)
        for h0 in (2, 3):  # even (left) and odd (right) children
            h = np.arange(h0, 2 * size, 2)
            if h0 == 2:
                qp = q[h >> 1]
                fixed[h] = [(a << FIXED_BITS) // b if b > 0 else 1 for a, b in zip(q[h], qp)]
            else:
                fixed[h] = q[h] >> (32 - FIXED_BITS)
        fixed = np.clip(fixed[1:].astype(np.int64), 1, (1 << FIXED_BITS) - 1)
        prob = np.concatenate([[0.0], fixed.astype(np.float64) / (1 << FIXED_BITS)])
        return cls(levels, prob)


@dataclass
class ActivityDecisions:
    """The coded bits of a chunk in decoding order: a list of (bits [m] int32, probs [m] float64)."""

    steps: list[tuple[np.ndarray, np.ndarray]]

    def ideal_bits(self) -> float:
        """Code length in bits under the model: sum of -log2 P(coded bit)."""
        total = 0.0
        for bits, probs in self.steps:
            total += float(-np.log2(np.where(bits == 1, probs, 1.0 - probs)).sum())
        return total


def activity_decisions(codes: SparseCodes, tables: ActivityTables) -> ActivityDecisions:
    """The bits that describe which features are active in each sample, in decoding order."""
    L, prob = tables.levels, tables.prob
    keys = (codes.rows() << L) | codes.indices.astype(np.int64)
    level_keys, parent_of = [keys], []  # parent_of[j]: index in level j's keys of each child's parent
    for _ in range(L):
        k = level_keys[-1] >> 1
        new = np.empty(len(k), dtype=bool)
        new[:1] = True
        np.not_equal(k[1:], k[:-1], out=new[1:])
        parent_of.append(np.cumsum(new) - 1)
        level_keys.append(k[new])
    level_keys.reverse()
    parent_of.reverse()
    root = np.zeros(codes.n, dtype=np.int32)
    root[level_keys[0]] = 1
    steps = [(root, np.full(codes.n, prob[1]))]
    for lvl in range(L):
        parents, children = level_keys[lvl], level_keys[lvl + 1]
        pidx = parent_of[lvl]
        is_right = (children & 1).astype(bool)
        left_on = np.zeros(len(parents), dtype=bool)
        left_on[pidx[~is_right]] = True
        right_on = np.zeros(len(parents), dtype=bool)
        right_on[pidx[is_right]] = True
        h_left = (1 << (lvl + 1)) + ((parents << 1) & ((1 << (lvl + 1)) - 1))
        steps.append((left_on.astype(np.int32), prob[h_left]))
        steps.append((right_on[left_on].astype(np.int32), prob[h_left[left_on] + 1]))
    return ActivityDecisions(steps)


def decode_activity(decode_bits, n: int, tables: ActivityTables, d_sae: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of activity_decisions. decode_bits(probs) -> [len(probs)] int32 reads bits in order.

    Returns rows [nnz] int64 and features [nnz] int32, sorted by (row, feature).
    """
    L, prob = tables.levels, tables.prob
    keys = np.flatnonzero(decode_bits(np.full(n, prob[1]))).astype(np.int64)
    for lvl in range(L):
        h_left = (1 << (lvl + 1)) + ((keys << 1) & ((1 << (lvl + 1)) - 1))
        left_on = decode_bits(prob[h_left]).astype(bool)
        right_on = ~left_on
        right_on[left_on] = decode_bits(prob[h_left[left_on] + 1]).astype(bool)
        children = np.stack([keys << 1, (keys << 1) | 1], axis=1)
        keys = children[np.stack([left_on, right_on], axis=1)]
    feats = keys & ((1 << L) - 1)
    if len(feats) and feats.max() >= d_sae:
        raise ValueError("decoded a padding feature: the stream does not match the model")
    return keys >> L, feats.astype(np.int32)
