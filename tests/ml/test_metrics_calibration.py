"""The numpy metrics against brute force, and the calibration helpers."""

import itertools

import numpy as np
import pytest

from ml.calibration import choose_min_confidence, fit_temperature
from ml.metrics import (
    balanced_accuracy,
    classification_report,
    expected_calibration_error,
    roc_auc,
    sensitivity_at_specificity,
    top_k_accuracy,
)


def brute_force_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(y * 0.7, 1.0), 1)  # rounding makes ties
    assert roc_auc(y, s) == pytest.approx(brute_force_auc(y, s))
    assert roc_auc(y, y.astype(float)) == 1.0
    assert np.isnan(roc_auc(np.ones(5), np.arange(5.0)))


def test_balanced_accuracy_and_top_k():
    y = np.array([0, 0, 0, 0, 1, 2])
    pred = np.array([0, 0, 0, 0, 0, 2])
    assert balanced_accuracy(y, pred) == pytest.approx((1 + 0 + 1) / 3)
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert top_k_accuracy(np.array([1, 0]), probs, 1) == 0.0
    assert top_k_accuracy(np.array([1, 0]), probs, 2) == 0.5
    assert top_k_accuracy(np.array([1, 0]), probs, 3) == 1.0


def test_sensitivity_at_specificity():
    y = np.array([0] * 10 + [1] * 10)
    s = np.r_[np.arange(10), np.arange(10) + 8.5]  # negative 9 outscores positive 8.5
    assert sensitivity_at_specificity(y, s, 0.8) == 1.0
    assert sensitivity_at_specificity(y, s, 1.0) == 0.9


def test_ece_is_zero_for_calibrated_and_large_for_overconfident():
    y = np.array([0, 1] * 50)
    calibrated = np.tile([[0.5, 0.5]], (100, 1))
    assert expected_calibration_error(y, calibrated) == pytest.approx(0.0, abs=1e-9)
    overconfident = np.tile([[0.99, 0.01]], (100, 1))
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.49, abs=1e-6)


def test_temperature_scaling_recovers_the_true_temperature():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, (4000, 5))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, y)  # a model 3x overconfident
    assert t == pytest.approx(3.0, rel=0.1)


def test_min_confidence_threshold_meets_the_target_on_validation():
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    t = choose_min_confidence(conf, correct, 0.8)
    kept = conf >= t
    assert correct[kept].mean() >= 0.8
    assert t == 0.5  # the largest confident set that is still 80 % right
    assert choose_min_confidence(conf, np.ones(8, bool), 0.8) == 0.0


def test_classification_report_on_a_class_subset():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.6, 0.1, 0.3], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    r = classification_report(y, probs, ["a", "mel", "c"], eval_classes=[0, 1])
    assert r["n"] == 2 and r["codes"] == ["a", "mel"]
    assert r["balanced_accuracy"] == 1.0
    assert r["per_class"]["mel"]["support"] == 1
    assert "mel_sensitivity_at_80_specificity" in r


def test_melanoma_vs_nevus_report_counts_gate_rejections_as_missed_melanomas():
    """PH2's numbers as the product sees them: at the triage threshold a melanoma reaches the
    urgent tier only when the gate lets it through."""
    from ml.data import Sample
    from ml.evaluation import melanoma_vs_nevus

    codes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    samples = [Sample(f"{i}.jpg", label, "ph2", str(i)) for i, label in enumerate(["mel"] * 4 + ["nv"] * 6)]
    p_mel = np.array([0.9, 0.8, 0.6, 0.1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01])
    probs = np.zeros((10, 7))
    probs[:, 4], probs[:, 5] = p_mel, 1.0 - p_mel
    skin = np.ones(10, dtype=bool)
    skin[0] = False  # the gate rejects the clearest melanoma
    r = melanoma_vs_nevus(probs, skin, samples, codes, malignancy_threshold=0.4)
    assert (r["n"], r["melanomas"], r["nevi"]) == (10, 4, 6)
    assert r["mel_auc"] == pytest.approx(21.5 / 24)  # 3 above every nevus; one above 3, tied with 1
    assert r["at_triage_threshold"]["melanoma_sensitivity"] == pytest.approx(2 / 4)
    assert r["at_triage_threshold"]["nevus_specificity"] == pytest.approx(5 / 6)
    assert r["gate_false_rejection"] == pytest.approx(0.1)
    assert set(r["ham7"]["per_class"]) == set(codes)
