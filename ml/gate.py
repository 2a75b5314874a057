"""The "is this a skin photo at all?" gate.

A classifier trained on skin photos still ranks a photo of a cat or a receipt
among its skin conditions, often confidently. The gate looks at where the photo
lands in the backbone's embedding space instead: its Mahalanobis distance to
the nearest class centre of the training photos, with one covariance shared by
all classes (Lee et al., 2018, "A simple unified framework for detecting
out-of-distribution samples"). Photos farther than a threshold are rejected.
A flat colour or an almost uniform picture can land close to the skin photos in
that space (the backbone has little to say about it), so the gate also requires a
minimum of pixel contrast: the standard deviation of the normalised input.

Both thresholds are set on the *validation* skin photos so that together they
reject at most a set share of them (``python -m ml train --max-false-rejection``, 1.5 %
by default, a margin under the 2 % target for new photos; a quarter of that budget
goes to the contrast check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GATE_FILE = "gate.npz"


class MahalanobisGate:
    def __init__(self, means: np.ndarray, precision: np.ndarray, threshold: float = np.inf, min_pixel_std: float = 0.0):
        self.means = np.asarray(means, dtype=np.float32)
        self.precision = np.asarray(precision, dtype=np.float32)
        self.threshold = float(threshold)
        self.min_pixel_std = float(min_pixel_std)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray, shrinkage: float = 0.05) -> "MahalanobisGate":
        """Class means and a shared covariance, shrunk towards a scaled identity so that it
        stays invertible and does not over-trust the few thousand training photos."""
        x = np.asarray(embeddings, dtype=np.float64)
        labels = np.asarray(labels)
        classes = np.unique(labels)
        means = np.stack([x[labels == c].mean(axis=0) for c in classes])
        centred = x - means[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / max(len(x) - 1, 1)
        scale = max(np.trace(cov) / cov.shape[0], 1e-6)  # floor: constant features stay invertible
        cov = (1.0 - shrinkage) * cov + shrinkage * scale * np.eye(cov.shape[0])
        return cls(means, np.linalg.inv(cov))

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean."""
        x = np.asarray(embeddings, dtype=np.float64)
        precision = self.precision.astype(np.float64)
        best = np.full(len(x), np.inf, dtype=np.float64)
        for mean in self.means:
            d = x - mean
            best = np.minimum(best, np.sum((d @ precision) * d, axis=1))
        return best

    @staticmethod
    def pixel_std(batch: np.ndarray) -> np.ndarray:
        """Contrast of each normalised input image: the spatial spread of each colour
        channel, averaged over channels (so a flat red is as flat as a flat grey)."""
        b = np.asarray(batch, dtype=np.float32)
        return b.std(axis=(1, 2)).mean(axis=-1)

    def calibrate(
        self,
        skin_embeddings: np.ndarray,
        skin_pixel_std: np.ndarray | None = None,
        max_false_rejection: float = 0.02,
        contrast_share: float = 0.25,
        groups=None,
    ) -> float:
        """Set the thresholds so at most ``max_false_rejection`` of these skin photos are rejected;
        with ``groups`` (a data source per photo), at most that share of *each* group: the
        loosest of the per-group thresholds is kept."""
        distance = self.distance(skin_embeddings)
        stds = None if skin_pixel_std is None else np.asarray(skin_pixel_std, dtype=np.float64)
        labels = np.zeros(len(distance), dtype=int) if groups is None else np.asarray(groups)
        thresholds, min_stds = [], []
        for group in np.unique(labels):
            m = labels == group
            t, s = _thresholds(distance[m], None if stds is None else stds[m], max_false_rejection, contrast_share)
            thresholds.append(t)
            min_stds.append(s)
        self.threshold = float(max(thresholds))
        self.min_pixel_std = float(min(min_stds))
        return self.threshold

    def is_skin(self, embeddings: np.ndarray, batch: np.ndarray | None = None) -> np.ndarray:
        if embeddings is None:
            raise ValueError("the gate needs the model's embedding output")
        ok = self.distance(embeddings) <= self.threshold
        if batch is not None and self.min_pixel_std > 0:
            ok &= self.pixel_std(batch) >= self.min_pixel_std
        return ok

    def save(self, directory: str | Path) -> dict:
        np.savez_compressed(Path(directory) / GATE_FILE, means=self.means, precision=self.precision)
        return {"method": "mahalanobis", "file": GATE_FILE, "threshold": self.threshold, "min_pixel_std": self.min_pixel_std}


def _thresholds(distance, pixel_std, max_false_rejection, contrast_share) -> tuple[float, float]:
    """(distance threshold, minimum contrast) rejecting at most the budget of these photos, a
    ``contrast_share`` of it spent on the contrast check."""
    passed = np.ones(len(distance), dtype=bool)
    budget, min_std = max_false_rejection, 0.0
    if pixel_std is not None:
        min_std = float(np.quantile(pixel_std, max_false_rejection * contrast_share))
        passed = pixel_std >= min_std
        budget = max_false_rejection - (1.0 - passed.mean())
    # among the photos that pass the contrast check, reject at most the rest of the budget
    share = max(budget, 0.0) * len(distance) / max(passed.sum(), 1)
    return float(np.quantile(distance[passed], 1.0 - share)), min_std


def load_gate(directory: str | Path, config: dict) -> MahalanobisGate:
    """Build the gate an artifact describes (``metadata["gate"]``)."""
    method = config.get("method")
    if method != "mahalanobis":
        raise ValueError(f"unknown gate method {method!r}")
    with np.load(Path(directory) / config.get("file", GATE_FILE)) as data:
        return MahalanobisGate(data["means"], data["precision"], config["threshold"], config.get("min_pixel_std", 0.0))
