"""bench/triage_outcomes.py: the tallies per source and skin type that the model card reports."""

import numpy as np

from bench.triage_outcomes import per_group, tally

CODES = ["mel", "bcc", "nv", "ad"]


def test_per_source_counts_missed_cancers_and_benign_photos_sent_to_urgent():
    probabilities = np.array([
        [0.90, 0.05, 0.03, 0.02],  # mel, high: urgent
        [0.02, 0.01, 0.95, 0.02],  # bcc read as a mole: not urgent
        [0.50, 0.10, 0.30, 0.10],  # nv with a high malignancy sum: a benign photo in urgent
        [0.01, 0.01, 0.97, 0.01],  # nv, low
    ])
    labels = ["mel", "bcc", "nv", "nv"]
    states = ["assessed"] * 4
    report = per_group(CODES, probabilities, labels, states, 0.3, ["ham", "fitz17k", "ham", "fitz17k"])
    assert set(report) == {"ham", "fitz17k"}
    ham, fitz = report["ham"], report["fitz17k"]
    assert ham["malignant_photos"] == 1 and ham["malignant_in_urgent_share"] == 1.0
    assert ham["benign_in_urgent"] == 1 and ham["benign_in_urgent_share"] == 1.0
    assert fitz["malignant_in_urgent_share"] == 0.0 and fitz["benign_in_urgent"] == 0
    whole = tally(CODES, probabilities, labels, states, 0.3)
    assert whole["benign_photos"] == 2 and whole["benign_in_urgent_share"] == 0.5
    # photos without a group (no recorded skin type) are left out of the per-group report
    assert set(per_group(CODES, probabilities, labels, states, 0.3, ["1-2", None, None, "5-6"])) == {"1-2", "5-6"}


def test_a_threshold_per_photo_is_each_photos_own():
    probabilities = np.array([[0.2, 0.0, 0.8, 0.0]] * 2)  # 20 % melanoma on a mole
    report = tally(CODES, probabilities, ["nv", "nv"], ["assessed"] * 2, np.array([0.1, 0.5]))
    assert report["benign_in_urgent"] == 1
