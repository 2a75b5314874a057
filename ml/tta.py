"""Test-time flips: the network sees each photo mirrored too, and its logits are averaged.

A mole has no "up" or "left": the training views were flipped and rotated at random, so a
flipped photo is as valid an input as the original, and averaging the logits of a few such
views removes part of the noise of any one of them. The views are made in one batch, so one
engine call serves them all.

The embedding (the not-skin gate's and the lesion timeline's input) stays the one of the
photo as taken: the gate's thresholds were set on it, and a change of embedding must mean a
change of photo, not of view.

``python -m ml tta`` measures 1, 2 and 4 views on the validation split and records the best
in the artifact's metadata (``test_time_flips``), refitting the temperature and the
uncertainty threshold on the averaged logits.
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


def with_flips(forward: Forward, views: int) -> Forward:
    """Wrap an engine's ``forward(batch) -> (logits, embedding)`` so that it averages the logits
    over ``views`` flipped copies and returns the embedding of the photo as taken."""
    if views == 1:
        return forward

    def flipped(batch: np.ndarray):
        n = len(batch)
        logits, embedding = forward(flip_views(batch, views))
        logits = np.asarray(logits).reshape(views, n, -1).mean(axis=0)
        return logits, None if embedding is None else np.asarray(embedding)[:n]

    return flipped


def views_of(metadata: dict) -> int:
    """The number of views an artifact is served with (1 when it never chose)."""
    views = int(metadata.get("test_time_flips") or 1)
    if views not in FLIP_CHOICES:
        raise ValueError(f"metadata test_time_flips must be one of {FLIP_CHOICES}, not {views!r}")
    return views


def choose_flips(model_dir, samples, choices=FLIP_CHOICES, min_gain: float = 0.005, write: bool = False,
                 batch_size: int = 64) -> dict:
    """Score the artifact's Keras model on ``samples`` (the validation split) with each number of
    views in ``choices``, the temperature and the uncertainty threshold refitted for each; the
    most accurate wins if it beats one view by ``min_gain`` of balanced accuracy (fewer views on
    a tie: each costs a network pass per photo). With ``write`` the choice, its temperature and
    threshold go into the metadata, and the malignancy threshold, fitted on other outputs, is
    dropped until ``python -m ml thresholds --write`` refits it."""
    from .artifact import read_metadata, write_artifact
    from .calibration import choose_min_confidence, fit_temperature
    from .data import load_training_image
    from .evaluation import _labels, evaluate_probabilities
    from .inference import Classifier, softmax
    from .preprocessing import prepare_batch

    if 1 not in choices or not set(choices) <= set(FLIP_CHOICES):
        raise ValueError(f"choices must include 1 and come from {FLIP_CHOICES}, not {choices!r}")
    classifier = Classifier.load(model_dir, runtime="keras")
    codes = [c for c, _ in classifier.classes]
    most = max(choices)
    parts = []
    for i in range(0, len(samples), batch_size):
        images = [load_training_image(s, classifier.input_size) for s in samples[i : i + batch_size]]
        batch = prepare_batch(images, classifier.input_size, classifier.preprocessing)
        logits, _ = classifier.engine_forward(flip_views(batch, most))
        parts.append(np.asarray(logits).reshape(most, len(images), -1))
    per_view = np.concatenate(parts, axis=1)
    y = _labels(samples, codes)
    known = y >= 0
    target = float((classifier.metadata.get("thresholds") or {}).get("target_accuracy_when_confident", 0.80))
    report = {}
    for views in sorted(choices):
        logits = per_view[:views].mean(axis=0)
        temperature = fit_temperature(logits[known], y[known])
        probs = softmax(logits, temperature)
        metrics = evaluate_probabilities(probs, None, samples, codes)["all"]
        min_confidence = choose_min_confidence(probs.max(axis=1), (probs.argmax(axis=1) == y) & known, target)
        report[views] = {"balanced_accuracy": float(metrics["balanced_accuracy"]), "ece": float(metrics["ece"]),
                         "temperature": float(temperature), "min_confidence": float(min_confidence)}
    best = max(sorted(report), key=lambda v: report[v]["balanced_accuracy"])  # max keeps the first of a tie
    chosen = best if report[best]["balanced_accuracy"] >= report[1]["balanced_accuracy"] + min_gain else 1
    result = {"split_photos": len(samples), "min_gain": min_gain, "chosen": chosen,
              "by_views": {str(v): r for v, r in report.items()}}
    if write:
        metadata = read_metadata(model_dir, verify=False)
        metadata.pop("files", None)
        metadata["test_time_flips"] = chosen
        metadata["temperature"] = report[chosen]["temperature"]
        thresholds = metadata.setdefault("thresholds", {})
        thresholds["min_confidence"] = report[chosen]["min_confidence"]
        if thresholds.pop("malignancy", None) is not None:
            result["note"] = "malignancy threshold dropped: refit it with python -m ml thresholds --write"
        metadata["tta"] = result
        write_artifact(model_dir, metadata)
    return result
