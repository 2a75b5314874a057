"""The not-skin gate: Mahalanobis distance in embedding space plus a contrast check."""

import numpy as np
import pytest
from PIL import Image

from ml.gate import MahalanobisGate, load_gate
from ml.nonskin import synthetic_nonskin
from ml.preprocessing import prepare_batch

from .conftest import spot_image


def colour_embedding(batch: np.ndarray) -> np.ndarray:
    """A fixed, hand-made 'backbone' for the test: colour means, spreads and a coarse layout."""
    b = np.asarray(batch, dtype=np.float64)
    n = len(b)
    coarse = b.reshape(n, 4, b.shape[1] // 4, 4, b.shape[2] // 4, 3).mean(axis=(2, 4)).reshape(n, -1)
    return np.concatenate([b.mean(axis=(1, 2)), b.std(axis=(1, 2)), coarse], axis=1)


def test_gate_accepts_skin_like_and_rejects_synthetic_non_skin(tmp_path):
    labels = ["nv", "mel", "bkl", "acne"]
    skin = [spot_image(labels[i % 4], seed=i) for i in range(240)]
    batch = prepare_batch(skin, (32, 32), "efficientnet_lite")
    emb = colour_embedding(batch)
    y = np.array([labels[i % 4] for i in range(240)])
    gate = MahalanobisGate.fit(emb[:160], y[:160])
    gate.calibrate(emb[160:], MahalanobisGate.pixel_std(batch[160:]), max_false_rejection=0.02)
    assert gate.is_skin(emb[160:], batch[160:]).mean() >= 0.97

    fresh = [spot_image(labels[i % 4], seed=10_000 + i) for i in range(100)]
    fb = prepare_batch(fresh, (32, 32), "efficientnet_lite")
    assert gate.is_skin(colour_embedding(fb), fb).mean() >= 0.9

    nonskin = synthetic_nonskin(size=64)
    nb = prepare_batch(list(nonskin.values()), (32, 32), "efficientnet_lite")
    ok = gate.is_skin(colour_embedding(nb), nb)
    rejected = [name for name, keep in zip(nonskin, ok) if not keep]
    assert all(name in rejected for name in nonskin if name.startswith(("flat:", "noise:")))

    config = gate.save(tmp_path)
    again = load_gate(tmp_path, config)
    np.testing.assert_array_equal(again.is_skin(colour_embedding(nb), nb), ok)


def test_contrast_check_catches_a_flat_picture_the_embedding_accepts():
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (500, 8))
    gate = MahalanobisGate.fit(emb, np.zeros(500, int))
    stds = rng.uniform(0.2, 0.6, 500)
    gate.calibrate(emb, stds, max_false_rejection=0.02)
    assert 0.0 < gate.min_pixel_std < 0.25
    assert gate.is_skin(emb, None).mean() >= 0.98
    flat = np.zeros((1, 16, 16, 3), np.float32)
    centre = np.zeros((1, 8))  # right in the middle of the skin cluster
    assert gate.is_skin(centre, None)[0]
    assert not gate.is_skin(centre, flat)[0]


def test_gate_false_rejection_is_bounded_by_calibration():
    rng = np.random.default_rng(1)
    emb = rng.normal(0, 1, (2000, 16))
    gate = MahalanobisGate.fit(emb[:1000], rng.integers(0, 3, 1000))
    gate.calibrate(emb[1000:], rng.uniform(0.2, 0.6, 1000), max_false_rejection=0.02)
    assert 1.0 - gate.is_skin(emb[1000:], None).mean() <= 0.02 + 1e-9
    far = rng.normal(0, 1, (50, 16)) + 12.0
    assert not gate.is_skin(far, None).any()


def test_gate_needs_embeddings():
    gate = MahalanobisGate(np.zeros((1, 2)), np.eye(2), 1.0)
    with pytest.raises(ValueError):
        gate.is_skin(None, np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError):
        load_gate(".", {"method": "knn"})
    assert Image  # PIL is used through spot_image


def test_per_source_calibration_keeps_every_source_within_the_budget():
    """One source whose photos sit farther out (another clinic's camera) must not spend the
    whole budget: with groups, each source is held to it on its own."""
    rng = np.random.default_rng(0)
    near, far = rng.normal(0, 1, (900, 6)), rng.normal(0, 1, (100, 6)) * 1.6
    emb = np.concatenate([near, far])
    groups = np.array(["ham"] * 900 + ["derm7pt"] * 100)
    gate = MahalanobisGate.fit(rng.normal(0, 1, (2000, 6)), np.zeros(2000, dtype=int), shrinkage=0.0)

    def rejected(g):
        out = ~g.is_skin(emb)
        return {s: float(out[groups == s].mean()) for s in ("ham", "derm7pt")}

    pooled = MahalanobisGate(gate.means, gate.precision)
    pooled.calibrate(emb, max_false_rejection=0.02)
    assert rejected(pooled)["derm7pt"] > 0.05  # the far source pays for the pooled budget
    split = MahalanobisGate(gate.means, gate.precision)
    split.calibrate(emb, max_false_rejection=0.02, groups=groups)
    assert all(rate <= 0.02 + 1e-9 for rate in rejected(split).values())
    assert split.threshold >= pooled.threshold
