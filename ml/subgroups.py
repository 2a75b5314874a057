"""Metrics per group of photos: per source, per kind (dermoscopic / clinical) and per skin type.

A model can look good overall and fail one clinic, camera or skin type: issue 22 asks for every
headline number per source and per Fitzpatrick group (1-2, 3-4, 5-6). The groups are read from
the samples (``Sample.source``, ``Sample.kind``, ``Sample.skin_type``), so any split of any
sources can be reported the same way.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .classes import CLASS_LABELS
from .data import skin_type_group
from .metrics import balanced_accuracy, expected_calibration_error, roc_auc
from .thresholds import MALIGNANT_CODES, malignancy_scores

GroupOf = Callable[[object], "str | None"]

GROUPINGS: dict[str, GroupOf] = {
    "source": lambda s: s.source,
    "kind": lambda s: s.kind,
    "skin_type": lambda s: skin_type_group(s.skin_type),
}


def group_masks(samples, group_of: GroupOf) -> dict[str, np.ndarray]:
    """A boolean mask per group name (photos whose group is None belong to none)."""
    names = np.array([group_of(s) or "" for s in samples], dtype=object)
    return {name: names == name for name in sorted(set(names.tolist()) - {""})}


def headline(probs: np.ndarray, samples, codes: Sequence[str], skin: np.ndarray | None = None) -> dict:
    """The numbers issue 22 sets targets on, for one group of photos.

    ``balanced_accuracy`` is over the product's classes (photos of another condition left out,
    the model's columns restricted to those classes); ``malignant_auc`` ranks the summed
    skin-cancer probability of malignant photos (mel, bcc, scc, akiec) against every other photo,
    "other" conditions included; ``mel_recall`` is the share of melanomas ranked first as
    melanoma; ``ece`` is over every photo whose class the model has; ``gate_false_rejection``
    the share of these (all skin) photos that the not-skin gate turns away."""
    codes = list(codes)
    index = {c: i for i, c in enumerate(codes)}
    y = np.array([index.get(s.label, -1) for s in samples], dtype=np.int64)
    labels = np.array([s.label for s in samples])
    product = [index[c] for c in CLASS_LABELS if c in index]
    in_product = np.isin(y, product)
    out: dict = {"n": int(len(samples))}
    if in_product.any():
        restricted = probs[in_product][:, product]
        pred = np.array(product)[restricted.argmax(axis=1)]
        out["balanced_accuracy"] = balanced_accuracy(y[in_product], pred)
    malignant = np.isin(labels, MALIGNANT_CODES)
    out["malignant"] = int(malignant.sum())
    out["malignant_auc"] = roc_auc(malignant, malignancy_scores(probs, codes)) if len(samples) else float("nan")
    mel = labels == "mel"
    if mel.any() and "mel" in index:
        out["melanomas"] = int(mel.sum())
        out["mel_recall"] = float(np.mean(probs[mel].argmax(axis=1) == index["mel"]))
    known = y >= 0
    if known.any():
        out["ece"] = expected_calibration_error(y[known], probs[known])
    if skin is not None and len(skin):
        out["gate_false_rejection"] = float(1.0 - np.mean(skin))
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def report_by_group(probs: np.ndarray, samples, codes: Sequence[str], skin: np.ndarray | None = None) -> dict:
    """``headline`` for every source, kind and skin-type group of ``samples``."""
    out = {}
    for grouping, group_of in GROUPINGS.items():
        masks = group_masks(samples, group_of)
        if not masks:
            continue
        out[grouping] = {
            name: headline(probs[m], [s for s, keep in zip(samples, m) if keep], codes,
                           None if skin is None else np.asarray(skin)[m])
            for name, m in masks.items()
        }
    return out
