"""Trained whole-network artifacts as members of one new artifact (a soup or an ensemble).

Both ways of combining need members that are the same kind of network on the same input: same
architecture, preprocessing, input size and classes. This module loads and checks them and turns
the combined network into an artifact with the training code (``training.finish_artifact``), so
that calibration, the not-skin gate and the metrics are made exactly as for a trained model.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import numpy as np


class MemberError(ValueError):
    """The members cannot be combined into one network."""


def load_members(directories: Sequence[Path]) -> list[dict]:
    """Each member's backbone, head, metadata and ``version@sha256`` start record, checked to be
    the same kind of network (a combined artifact is not itself a member)."""
    from .artifact import read_metadata
    from .training import warm_start

    if len(directories) < 2:
        raise MemberError(f"combining needs two or more members, not {len(directories)}")
    metas = [read_metadata(d, verify=False) for d in directories]  # warm_start below verifies the files
    for key in ("architecture", "preprocessing", "input_size", "classes", "other_handling"):
        values = [m.get(key) for m in metas]
        if any(v != values[0] for v in values[1:]):
            raise MemberError(f"the members differ in {key}: {values}")
    for d, m in zip(directories, metas):
        if (m.get("training") or {}).get("recipe") in ("soup", "ensemble"):
            raise MemberError(f"{d} is itself a {m['training']['recipe']}: give its members instead")
    codes = [c["code"] for c in metas[0]["classes"]]
    members = []
    for d, meta in zip(directories, metas):
        backbone, head, start = warm_start(d, codes)
        members.append({"backbone": backbone, "head": head, "meta": meta, "start": start})
    return members


def normalised_shares(shares: Sequence[float] | None, n: int) -> np.ndarray:
    shares = np.ones(n) if shares is None else np.asarray(shares, dtype=np.float64)
    if len(shares) != n:
        raise MemberError(f"one share per member ({n}), not {len(shares)}")
    if (shares < 0).any() or shares.sum() <= 0:
        raise MemberError(f"member shares must be non-negative and not all zero, not {shares.tolist()}")
    return shares / shares.sum()


def run_combined(args, splits, combine: Callable, how: str) -> dict:
    """Load ``args.members``, ``combine(members, shares)`` them into (backbone, head, extras) and
    write the artifact. ``extras`` may hold ``serving`` (the served model, when it is not backbone +
    head) and ``gate_columns`` (the embedding columns the gate and the timeline use)."""
    from .training import class_codes, embed_splits, finish_artifact

    wall = {"started": time.time()}
    members = load_members(args.members)
    shares = normalised_shares(args.shares, len(members))
    first = members[0]["meta"]
    args.input_size = int(first["input_size"][0])
    args.other = first["other_handling"]
    codes = class_codes(args.other)
    if codes != [c["code"] for c in first["classes"]]:
        raise MemberError(f"the members' classes are not those of other_handling={args.other!r}")
    backbone, head, extras = combine(members, shares)
    t0 = time.time()
    emb = embed_splits(backbone, splits, SimpleNamespace(input_size=args.input_size, seed=args.seed,
                                                         preprocessing=backbone.preprocessing))
    wall["embedding_s"] = round(time.time() - t0, 1)
    training = {"recipe": how, "members": [
        {**m["start"], "share": round(float(s), 6), "command": (m["meta"].get("training") or {}).get("command")}
        for m, s in zip(members, shares)]}
    return finish_artifact(args, splits, codes, backbone, head, emb, None, training, wall, **extras)
