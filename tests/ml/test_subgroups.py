"""Issue 22's numbers per source, kind of photo and skin type, checked by hand on small cases."""

import numpy as np
import pytest

from ml.data import Sample
from ml.subgroups import headline, report_by_group

CODES = ["mel", "nv", "bcc", "ad", "other"]


def sample(label, source, skin_type=None):
    return Sample(path=f"{source}/{label}", label=label, source=source, group=label, skin_type=skin_type)


def test_headline_numbers_by_hand():
    samples = [sample("mel", "fitz17k", 1), sample("mel", "fitz17k", 5), sample("nv", "fitz17k", 2),
               sample("other", "fitz17k", 6)]
    probs = np.array([
        [0.7, 0.1, 0.1, 0.05, 0.05],   # mel, right
        [0.2, 0.5, 0.1, 0.1, 0.1],     # mel read as nv
        [0.1, 0.8, 0.05, 0.03, 0.02],  # nv, right
        [0.05, 0.05, 0.05, 0.05, 0.8], # other: out of the product's classes
    ])
    h = headline(probs, samples, CODES, skin=np.array([True, True, False, True]))
    assert h["n"] == 4 and h["malignant"] == 2 and h["melanomas"] == 2
    assert h["mel_recall"] == 0.5
    assert h["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)  # mel 1/2, nv 1/1; "other" left out
    # malignancy scores: 0.8, 0.3 (malignant) vs 0.15, 0.1 (benign): every pair ranked right
    assert h["malignant_auc"] == 1.0
    assert h["gate_false_rejection"] == 0.25
    assert 0.0 <= h["ece"] <= 1.0


def test_groups_per_source_kind_and_skin_type():
    samples = [sample("mel", "ham"), sample("nv", "ham"), sample("mel", "fitz17k", 1), sample("nv", "fitz17k", 6),
               sample("bcc", "dermnet")]
    probs = np.full((5, 5), 0.2)
    report = report_by_group(probs, samples, CODES)
    assert set(report["source"]) == {"ham", "fitz17k", "dermnet"}
    assert report["kind"]["clinical"]["n"] == 3 and report["kind"]["dermoscopic"]["n"] == 2
    assert set(report["skin_type"]) == {"1-2", "5-6"}  # only photos with a recorded skin type
    assert report["skin_type"]["5-6"]["n"] == 1 and report["skin_type"]["5-6"]["malignant_auc"] is None
