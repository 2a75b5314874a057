"""Was the photo taken through a dermatoscope or with an ordinary camera? Read from the embedding.

The triage's operating point and the prediction sets differ by kind of photo (a clinical photo's
skin-cancer probabilities run lower, its sets are wider), but nobody tells the site which kind
a photo is. The two kinds look nothing alike (a dermatoscope's polarised close-up with its dark
round rim, against skin in ordinary light with its surroundings), so a linear probe on the
network's embedding tells them apart: a logistic regression, fitted on the training photos'
embeddings with their source's kind (``ml.data.kind_of``), kept in ``kind.npz`` beside the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KIND_FILE = "kind.npz"
KINDS = ("dermoscopic", "clinical")


class KindProbe:
    """p(clinical | embedding) = sigmoid(w . (x - mean) / scale + b)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, bias: float):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = float(bias)

    @classmethod
    def fit(cls, embeddings: np.ndarray, kinds, l2: float = 1e-3, steps: int = 300, lr: float = 0.5) -> "KindProbe":
        """Full-batch gradient descent on the L2-regularised log-loss, each kind weighted to
        half of the total (the training photos are two-thirds dermoscopic)."""
        x = np.asarray(embeddings, dtype=np.float64)
        y = np.array([KINDS.index(k) for k in kinds], dtype=np.float64)
        if len(set(y.tolist())) < 2:
            raise ValueError("the probe needs photos of both kinds")
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / scale
        weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())) / len(y)
        w, b = np.zeros(z.shape[1]), 0.0
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
            g = weight * (p - y)
            w -= lr * (z.T @ g + l2 * w)
            b -= lr * float(g.sum())
        return cls(mean, scale, w, b)

    def p_clinical(self, embeddings: np.ndarray) -> np.ndarray:
        z = (np.asarray(embeddings, dtype=np.float32) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias)))

    def kinds(self, embeddings: np.ndarray) -> list[str]:
        return [KINDS[int(p >= 0.5)] for p in self.p_clinical(embeddings)]

    def save(self, directory: str | Path) -> dict:
        np.savez(Path(directory) / KIND_FILE, mean=self.mean, scale=self.scale, weights=self.weights,
                 bias=np.float32(self.bias))
        return {"file": KIND_FILE, "kinds": list(KINDS)}


def load_kind_probe(directory: str | Path, config: dict) -> KindProbe:
    with np.load(Path(directory) / config.get("file", KIND_FILE)) as data:
        return KindProbe(data["mean"], data["scale"], data["weights"], float(data["bias"]))
