"""Classification metrics in plain numpy (no scikit-learn in the runtime)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_sensitivity_specificity(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(float)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = tp / (tp + fn)
        spec = tn / (tn + fp)
    return sens, spec


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int] | None = None) -> float:
    """Mean recall over the classes present in ``y_true`` (or the given ones)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true) if classes is None else classes
    recalls = [np.mean(y_pred[y_true == c] == c) for c in classes if np.any(y_true == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def roc_auc(y_binary: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic, ties averaged."""
    y = np.asarray(y_binary, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_binary: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds decreasing."""
    y = np.asarray(y_binary, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s, y = np.asarray(scores)[order], y[order]
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    tpr = np.r_[0.0, tps / max(y.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~y).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def sensitivity_at_specificity(y_binary: np.ndarray, scores: np.ndarray, specificity: float) -> float:
    fpr, tpr, _ = roc_curve(y_binary, scores)
    ok = fpr <= 1.0 - specificity + 1e-12
    return float(tpr[ok].max()) if np.any(ok) else 0.0


def macro_auc(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[int] | None = None) -> tuple[float, dict]:
    classes = range(probs.shape[1]) if classes is None else classes
    aucs = {int(c): roc_auc(np.asarray(y_true) == c, probs[:, c]) for c in classes}
    valid = [v for v in aucs.values() if not np.isnan(v)]
    return (float(np.mean(valid)) if valid else float("nan")), aucs


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence, equal-width bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def classification_report(y_true: np.ndarray, probs: np.ndarray, codes: Sequence[str], eval_classes: Sequence[int] | None = None) -> dict:
    """All headline metrics for one set of predictions.

    ``eval_classes``: the class indices that count (e.g. the 7 HAM classes); probabilities are then
    restricted to those columns and renormalised, the usual way to score a model on a subset task.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if eval_classes is not None:
        eval_classes = list(eval_classes)
        keep = np.isin(y_true, eval_classes)
        remap = {c: i for i, c in enumerate(eval_classes)}
        y_true = np.array([remap[c] for c in y_true[keep]], dtype=int)
        probs = probs[keep][:, eval_classes]
        probs = probs / probs.sum(axis=1, keepdims=True)
        codes = [codes[c] for c in eval_classes]
    n = len(codes)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, n)
    sens, spec = per_class_sensitivity_specificity(cm)
    auc, aucs = macro_auc(y_true, probs)
    report = {
        "n": int(len(y_true)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "top1_accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "top4_accuracy": top_k_accuracy(y_true, probs, min(4, n)) if len(y_true) else float("nan"),
        "macro_auc": auc,
        "ece": expected_calibration_error(y_true, probs) if len(y_true) else float("nan"),
        "per_class": {
            codes[i]: {
                "support": int(cm[i].sum()),
                "sensitivity": None if np.isnan(sens[i]) else float(sens[i]),
                "specificity": None if np.isnan(spec[i]) else float(spec[i]),
                "auc": None if np.isnan(aucs[i]) else float(aucs[i]),
            }
            for i in range(n)
        },
        "confusion_matrix": cm.tolist(),
        "codes": list(codes),
    }
    if "mel" in codes:
        m = list(codes).index("mel")
        report["mel_auc"] = aucs[m]
        report["mel_sensitivity_at_80_specificity"] = sensitivity_at_specificity(y_true == m, probs[:, m], 0.80)
    return report
