"""Fusion of age, sex and site with the image model: identity without context, learns real signal."""

import numpy as np
import pytest

from ml.fusion import (
    SITES,
    balanced_accuracy,
    context_vector,
    cross_validate,
    fit,
    fused_logits,
    group_folds,
)


def test_context_vector_encodes_known_parts_and_leaves_unknown_at_zero():
    v = context_vector(45, "male", "back")
    assert v[0] == pytest.approx(0.45)
    assert v[1:3].tolist() == [0.0, 1.0]
    assert v[3 + SITES.index("back")] == 1.0 and v.sum() == pytest.approx(2.45)
    assert not context_vector(None, "unknown", "unknown").any()
    assert not context_vector(float("nan"), None, None).any()


def _synthetic(n=600, seed=0):
    """Two classes the image cannot tell apart (flat log-probs), but the site can."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sites = np.where(rng.random(n) < 0.85, np.where(y == 1, "face", "back"), np.where(y == 1, "back", "face"))
    ctx = np.stack([context_vector(None, None, s) for s in sites])
    logp = np.log(np.full((n, 2), 0.5)) + rng.normal(0, 0.01, (n, 2))
    return logp, ctx, y


def test_fusion_learns_signal_the_image_lacks():
    logp, ctx, y = _synthetic()
    assert balanced_accuracy(logp, y) < 0.6
    w = fit(logp, ctx, y, l2=1e-3)
    assert balanced_accuracy(fused_logits(logp, ctx, w), y) > 0.8


def test_without_context_the_image_answer_is_unchanged():
    logp, ctx, y = _synthetic()
    w = fit(logp, ctx, y, l2=1e-3)
    empty = np.zeros_like(ctx)
    assert np.allclose(fused_logits(logp, empty, w), logp)


def test_folds_keep_a_lesion_together():
    groups = ["a", "a", "b", "c", "c", "c", "d"]
    folds = group_folds(groups, k=2)
    for g in set(groups):
        assert len({f for f, gg in zip(folds, groups) if gg == g}) == 1


def test_cross_validation_reports_the_gain_out_of_fold():
    logp, ctx, y = _synthetic()
    groups = [str(i) for i in range(len(y))]
    cv = cross_validate(logp, ctx, y, groups, l2_grid=(1e-3,), k=3)
    assert cv["none"] < 0.6 < 0.8 < cv[1e-3]
