"""Weight soups: one network whose weights are the mean of several trained artifacts.

Whole-network runs that start from the same ImageNet weights *and the same seed* (the same head
initialisation and first draws) and differ in schedule end in one basin of the loss, so the
average of their weights is a network in the middle of it, often better than each member
("Model soups", Wortsman et al., ICML 2022). Unlike an ensemble it costs one network pass per
photo. Runs with different seeds end in different basins, and their average is worse than either
(measured: docs/MODEL_CARD.md); combine those with ``ml/ensemble.py``.

``python -m ml soup --members A B --out C`` averages the members, then calibrates, fits the
not-skin gate, scores the held-out splits and writes the artifact (``members.run_combined``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .members import MemberError, normalised_shares



def mean_weights(members: Sequence[Sequence[np.ndarray]], shares: Sequence[float]) -> list[np.ndarray]:
    """The ``shares``-weighted mean of each weight over the members (shares are normalised)."""
    if len(members) < 2:
        raise MemberError(f"a soup needs two or more members, not {len(members)}")
    shares = normalised_shares(shares, len(members))
    first = members[0]
    for i, weights in enumerate(members[1:], start=2):
        if len(weights) != len(first) or any(a.shape != b.shape for a, b in zip(first, weights)):
            raise MemberError(f"member {i} is not the same network as member 1 (its weights differ in number or shape)")
    return [sum(share * np.asarray(w[k], dtype=np.float64) for share, w in zip(shares, members)).astype(first[k].dtype)
            for k in range(len(first))]


def mix(members: list[dict], shares: np.ndarray):
    """The average in member 1's backbone and head (for ``members.run_combined``)."""
    backbone, head = members[0]["backbone"], members[0]["head"]
    backbone.model.set_weights(mean_weights([m["backbone"].model.get_weights() for m in members], shares))
    head.set_weights(mean_weights([m["head"].get_weights() for m in members], shares))
    return backbone, head, {}
