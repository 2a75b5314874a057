"""Temperature scaling and the abstention threshold, both fitted on the validation split."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-np.mean(log_softmax(logits, temperature)[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature that minimises validation NLL (golden-section search on log T; NLL is
    unimodal in T)."""
    y = np.asarray(y)
    a, b = np.log(low), np.log(high)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, y, np.exp(c)), nll(logits, y, np.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, y, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, y, np.exp(d))
    return float(np.exp((a + b) / 2))


def choose_min_confidence(confidence: np.ndarray, correct: np.ndarray, target_accuracy: float) -> float:
    """Lowest threshold t such that the photos with top probability >= t are right at least
    ``target_accuracy`` of the time (on validation). Photos below t are reported as
    "uncertain". Returns 0.0 when every threshold already meets the target."""
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], np.asarray(correct, dtype=float)[order]
    running = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    meets = np.where(running >= target_accuracy)[0]
    if len(meets) == 0:
        return float(conf[0]) if len(conf) else 1.0
    last = meets[-1]  # the largest retained set that still meets the target
    if last == len(conf) - 1:
        return 0.0
    return float(conf[last])
