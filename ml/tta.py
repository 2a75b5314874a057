"""Test-time flips: the network sees each photo mirrored too, and its logits are averaged.

A mole has no "up" or "left": the training views were flipped and rotated at random, so a
flipped photo is as valid an input as the original, and averaging the logits of a few such
views removes part of the noise of any one of them. The views are made in one batch, so one
engine call serves them all.

The embedding (the not-skin gate's and the lesion timeline's input) stays the one of the
photo as taken: the gate's thresholds were set on it, and a change of embedding must mean a
change of photo, not of view.

A **centre crop** can be one more view (``test_time_crop``: the share of the side kept, e.g.
0.6): in an ordinary photo the spot is small in the frame, and the crop shows it nearer the
scale of the dermoscopic photos the model saw most (issue 22). The crop is cut from the
prepared batch and scaled back to the input size (bilinear), so every path that calls the
engine on a batch (serving, evaluation, thresholds, export timing) sees the same views.

``python -m ml tta`` measures 1, 2 and 4 views, each with and without the crops it is given,
on the validation split and records the best in the artifact's metadata (``test_time_flips``,
``test_time_crop``), refitting the temperature and the uncertainty threshold on the averaged
logits.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

FLIP_CHOICES = (1, 2, 4)

Forward = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]


def flip_views(batch: np.ndarray, views: int) -> np.ndarray:
    """The batch, then its left-right mirror, then (4 views) the up-down and the both-ways
    mirrors, stacked along the batch axis (``views * len(batch)`` images, NHWC)."""
    if views not in FLIP_CHOICES:
        raise ValueError(f"test-time flips must be one of {FLIP_CHOICES}, not {views!r}")
    batch = np.asarray(batch)
    parts = [batch]
    if views >= 2:
        parts.append(batch[:, :, ::-1])
    if views == 4:
        parts += [batch[:, ::-1], batch[:, ::-1, ::-1]]
    return np.ascontiguousarray(np.concatenate(parts))


def centre_crop(batch: np.ndarray, keep: float) -> np.ndarray:
    """The centre ``keep`` x ``keep`` of each image (NHWC), scaled back to the full size by
    bilinear interpolation (pixel centres aligned, as PIL and TensorFlow do)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"a centre crop keeps a share in (0, 1], not {keep!r}")
    batch = np.asarray(batch, dtype=np.float32)
    if keep == 1.0:
        return batch
    h, w = batch.shape[1:3]

    def axis(n):
        # output pixel i samples the crop at (i + 0.5) * keep - 0.5, offset to the centre
        pos = (np.arange(n) + 0.5) * keep - 0.5 + n * (1.0 - keep) / 2.0
        lo = np.clip(np.floor(pos).astype(int), 0, n - 1)
        hi = np.clip(lo + 1, 0, n - 1)
        return lo, hi, (pos - np.floor(pos)).astype(np.float32)

    (y0, y1, wy), (x0, x1, wx) = axis(h), axis(w)
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    top = batch[:, y0][:, :, x0] * (1 - wx) + batch[:, y0][:, :, x1] * wx
    bottom = batch[:, y1][:, :, x0] * (1 - wx) + batch[:, y1][:, :, x1] * wx
    return np.ascontiguousarray(top * (1 - wy) + bottom * wy, dtype=np.float32)


def serving_views(batch: np.ndarray, views: int, crop: float | None = None) -> np.ndarray:
    """What the engine is called on: the flipped copies, then the centre crop when there is one."""
    out = flip_views(batch, views)
    return out if crop is None else np.ascontiguousarray(np.concatenate([out, centre_crop(batch, crop)]))


def with_flips(forward: Forward, views: int, crop: float | None = None) -> Forward:
    """Wrap an engine's ``forward(batch) -> (logits, embedding)`` so that it averages the logits
    over ``views`` flipped copies (and the centre crop, if given) and returns the embedding of
    the photo as taken."""
    if views == 1 and crop is None:
        return forward
    total = views + (crop is not None)

    def flipped(batch: np.ndarray):
        n = len(batch)
        logits, embedding = forward(serving_views(batch, views, crop))
        logits = np.asarray(logits).reshape(total, n, -1).mean(axis=0)
        return logits, None if embedding is None else np.asarray(embedding)[:n]

    return flipped


def views_of(metadata: dict) -> int:
    """The number of flipped views an artifact is served with (1 when it never chose)."""
    views = int(metadata.get("test_time_flips") or 1)
    if views not in FLIP_CHOICES:
        raise ValueError(f"metadata test_time_flips must be one of {FLIP_CHOICES}, not {views!r}")
    return views


def crop_of(metadata: dict) -> float | None:
    """The centre crop an artifact adds as a view (None: none)."""
    crop = metadata.get("test_time_crop")
    if crop is None:
        return None
    crop = float(crop)
    if not 0.0 < crop < 1.0:
        raise ValueError(f"metadata test_time_crop must be in (0, 1), not {crop!r}")
    return crop


def passes_of(metadata: dict) -> int:
    """Network passes per photo: each flipped view and the crop cost one."""
    return views_of(metadata) + (crop_of(metadata) is not None)


def view_key(views: int, crop: float | None) -> str:
    """The name of a view set in reports: ``"2"``, ``"1+crop0.6"``."""
    return str(views) if crop is None else f"{views}+crop{crop:g}"


def choose_flips(model_dir, samples, choices=FLIP_CHOICES, min_gain: float = 0.005, write: bool = False,
                 batch_size: int = 64, crops: tuple = (), max_passes: int | None = None) -> dict:
    """Score the artifact's Keras model on ``samples`` (the validation split) with each number of
    views in ``choices``, alone and with each centre crop in ``crops`` (at most ``max_passes``
    network passes a photo), the temperature and the uncertainty threshold refitted for each; the
    most accurate wins if it beats one view by ``min_gain`` of balanced accuracy (fewer passes on
    a tie: each costs a network pass per photo). With ``write`` the choice, its temperature and
    threshold go into the metadata, and the malignancy threshold, fitted on other outputs, is
    dropped until ``python -m ml thresholds --write`` refits it."""
    from .artifact import read_metadata, write_artifact
    from .calibration import choose_min_confidence, fit_temperature
    from .data import load_training_image
    from .evaluation import evaluate_probabilities
    from .inference import Classifier, softmax
    from .preprocessing import prepare_batch
    from .subgroups import report_by_group

    if 1 not in choices or not set(choices) <= set(FLIP_CHOICES):
        raise ValueError(f"choices must include 1 and come from {FLIP_CHOICES}, not {choices!r}")
    crops = tuple(float(c) for c in crops)
    for c in crops:
        crop_of({"test_time_crop": c})  # refuses a crop out of (0, 1)
    classifier = Classifier.load(model_dir, runtime="keras")
    codes = [c for c, _ in classifier.classes]
    most = max(choices)
    parts = []
    for i in range(0, len(samples), batch_size):
        images = [load_training_image(s, classifier.input_size) for s in samples[i : i + batch_size]]
        batch = prepare_batch(images, classifier.input_size, classifier.preprocessing)
        stacked = np.concatenate([flip_views(batch, most)] + [centre_crop(batch, c) for c in crops])
        logits, _ = classifier.engine_forward(stacked)
        parts.append(np.asarray(logits).reshape(most + len(crops), len(images), -1))
    per_view = np.concatenate(parts, axis=1)
    index = {c: i for i, c in enumerate(codes)}
    y = np.array([index.get(s.label, -1) for s in samples], dtype=np.int64)
    known = y >= 0
    target = float((classifier.metadata.get("thresholds") or {}).get("target_accuracy_when_confident", 0.80))
    candidates = [(v, c) for c in (None,) + crops for v in sorted(choices)
                  if max_passes is None or v + (c is not None) <= max_passes]
    candidates.sort(key=lambda vc: vc[0] + (vc[1] is not None))  # fewest passes first: they win a tie
    report = {}
    for views, crop in candidates:
        rows = list(range(views)) + ([most + crops.index(crop)] if crop is not None else [])
        logits = per_view[rows].mean(axis=0)
        temperature = fit_temperature(logits[known], y[known])
        probs = softmax(logits, temperature)
        metrics = evaluate_probabilities(probs, None, samples, codes)["all"]
        min_confidence = choose_min_confidence(probs.max(axis=1), (probs.argmax(axis=1) == y) & known, target)
        kinds = report_by_group(probs, samples, codes).get("kind", {})
        report[(views, crop)] = {
            "balanced_accuracy": float(metrics["balanced_accuracy"]), "ece": float(metrics["ece"]),
            "temperature": float(temperature), "min_confidence": float(min_confidence),
            "passes": views + (crop is not None),
            "by_kind": {k: {m: v.get(m) for m in ("balanced_accuracy", "malignant_auc", "mel_recall")}
                        for k, v in kinds.items()},
        }
    best = max(report, key=lambda k: report[k]["balanced_accuracy"])  # max keeps the first of a tie
    chosen = best if report[best]["balanced_accuracy"] >= report[(1, None)]["balanced_accuracy"] + min_gain else (1, None)
    result = {"split_photos": len(samples), "min_gain": min_gain, "chosen": view_key(*chosen),
              "by_views": {view_key(*k): r for k, r in report.items()}}
    if write:
        metadata = read_metadata(model_dir, verify=False)
        metadata.pop("files", None)
        metadata["test_time_flips"] = chosen[0]
        if chosen[1] is None:
            metadata.pop("test_time_crop", None)
        else:
            metadata["test_time_crop"] = chosen[1]
        metadata["temperature"] = report[chosen]["temperature"]
        thresholds = metadata.setdefault("thresholds", {})
        thresholds["min_confidence"] = report[chosen]["min_confidence"]
        if thresholds.pop("malignancy", None) is not None:
            result["note"] = "malignancy threshold dropped: refit it with python -m ml thresholds --write"
        metadata["tta"] = result
        write_artifact(model_dir, metadata)
    return result
