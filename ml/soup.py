"""Weight soups: one network whose weights are the mean of several trained artifacts.

Whole-network runs that start from the same ImageNet weights and differ only in seed or
schedule end in one basin of the loss, so the average of their weights is a network in the
middle of it, often better than each member ("Model soups", Wortsman et al., ICML 2022). Unlike
an ensemble it costs one network pass per photo, the serving cost of any member.

``python -m ml soup --members A B --out C`` averages the members, then calibrates, fits the
not-skin gate, scores the held-out splits and writes the artifact with the same code as
``python -m ml train`` (``training.finish_artifact``). The test-time flips, the LiteRT engine
and the malignancy threshold are chosen afterwards as for a trained artifact.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np


class SoupError(ValueError):
    """The members cannot be averaged into one network."""


def mean_weights(members: Sequence[Sequence[np.ndarray]], shares: Sequence[float]) -> list[np.ndarray]:
    """The ``shares``-weighted mean of each weight over the members (shares are normalised)."""
    shares = np.asarray(shares, dtype=np.float64)
    if len(shares) != len(members) or len(members) < 2:
        raise SoupError(f"a soup needs two or more members and one share each, not {len(members)} / {len(shares)}")
    if (shares < 0).any() or shares.sum() <= 0:
        raise SoupError(f"member shares must be non-negative and not all zero, not {shares.tolist()}")
    shares = shares / shares.sum()
    first = members[0]
    for i, weights in enumerate(members[1:], start=2):
        if len(weights) != len(first) or any(a.shape != b.shape for a, b in zip(first, weights)):
            raise SoupError(f"member {i} is not the same network as member 1 (its weights differ in number or shape)")
    return [sum(share * np.asarray(w[k], dtype=np.float64) for share, w in zip(shares, members)).astype(first[k].dtype)
            for k in range(len(first))]


def _same(metas: list[dict], key: str) -> None:
    values = [m.get(key) for m in metas]
    if any(v != values[0] for v in values[1:]):
        raise SoupError(f"the members differ in {key}: {values}")


def mix_members(directories: Sequence[Path], shares: Sequence[float] | None = None):
    """Load the members and average them. Returns (backbone, head, metadata of member 1, a
    record of each member) with the average in member 1's backbone and head."""
    from .artifact import read_metadata
    from .training import warm_start

    metas = [read_metadata(d) for d in directories]
    for key in ("architecture", "preprocessing", "input_size", "classes", "other_handling"):
        _same(metas, key)
    codes = [c["code"] for c in metas[0]["classes"]]
    loaded = [warm_start(d, codes) for d in directories]
    shares = [1.0] * len(loaded) if shares is None else list(shares)
    backbone, head = loaded[0][0], loaded[0][1]
    backbone.model.set_weights(mean_weights([b.model.get_weights() for b, _, _ in loaded], shares))
    head.set_weights(mean_weights([h.get_weights() for _, h, _ in loaded], shares))
    total = float(sum(shares))
    record = [{**start, "share": round(float(s) / total, 6), "command": (m.get("training") or {}).get("command")}
              for (_, _, start), s, m in zip(loaded, shares, metas)]
    return backbone, head, metas[0], record


def run_soup(args, splits) -> dict:
    """``python -m ml soup``: the averaged network, calibrated and gated into an artifact."""
    from .training import class_codes, embed_splits, finish_artifact

    wall = {"started": time.time()}
    backbone, head, first, members = mix_members(args.members, args.shares)
    args.input_size = int(first["input_size"][0])
    args.other = first["other_handling"]
    codes = class_codes(args.other)
    if codes != [c["code"] for c in first["classes"]]:
        raise SoupError(f"the members' classes are not those of other_handling={args.other!r}")
    t0 = time.time()
    emb = embed_splits(backbone, splits, SimpleNamespace(input_size=args.input_size, seed=args.seed,
                                                         preprocessing=backbone.preprocessing))
    wall["embedding_s"] = round(time.time() - t0, 1)
    training = {"recipe": "soup", "members": members}
    return finish_artifact(args, splits, codes, backbone, head, emb, None, training, wall)
