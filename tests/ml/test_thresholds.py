"""The triage's malignancy threshold: chosen on validation for a melanoma sensitivity target."""

import json

import numpy as np
import pytest

from ml.thresholds import (
    choose_threshold,
    malignancy_scores,
    operating_point,
    write_threshold,
)

CODES = ["akiec", "bcc", "mel", "nv", "scc", "other"]


def test_scores_sum_the_four_malignant_classes():
    probs = np.array([[0.1, 0.2, 0.3, 0.3, 0.05, 0.05], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    assert malignancy_scores(probs, CODES) == pytest.approx([0.65, 0.0])


def test_largest_threshold_that_keeps_the_target_sensitivity():
    # 20 melanomas scored 0.05, 0.10, ..., 1.00: catching 95 % (19 of 20) allows t = 0.10.
    scores = np.arange(1, 21) / 20
    positive = np.ones(20, dtype=bool)
    t = choose_threshold(scores, positive, target_sensitivity=0.95)
    assert t == pytest.approx(0.10)
    assert np.mean(scores[positive] >= t) >= 0.95
    # Any larger threshold would miss a second melanoma.
    assert np.mean(scores[positive] >= np.nextafter(t, 1.0)) < 0.95


def test_negatives_do_not_move_the_threshold():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.99, 0.01])
    positive = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    assert choose_threshold(scores, positive, target_sensitivity=1.0) == pytest.approx(0.6)


def test_gate_rejected_melanomas_count_as_missed():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positive = np.ones(4, dtype=bool)
    eligible = np.array([True, True, True, False])
    # 3 of 4 reachable: a 75 % target is met by the lowest reachable score, 100 % is impossible.
    assert choose_threshold(scores, positive, eligible, target_sensitivity=0.75) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        choose_threshold(scores, positive, eligible, target_sensitivity=1.0)


def test_no_melanoma_no_threshold():
    with pytest.raises(ValueError):
        choose_threshold(np.array([0.5]), np.array([False]))


def test_operating_point_counts_false_alarms_among_benign_photos():
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.6, 0.2])
    labels = ["mel", "mel", "bcc", "nv", "nv", "other"]
    point = operating_point(scores, labels, 0.5)
    assert point["melanoma_sensitivity"] == pytest.approx(0.5)
    assert point["malignant_sensitivity"] == pytest.approx(2 / 3)
    assert point["false_alarm_rate"] == pytest.approx(1 / 3)  # the nv at 0.6
    assert point["urgent_share"] == pytest.approx(0.5)
    assert point["urgent_precision"] == pytest.approx(2 / 3)


def test_write_threshold_changes_only_its_keys(tmp_path):
    metadata = {"version": "x", "thresholds": {"min_confidence": 0.5}, "files": {"a": "b"}}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    write_threshold(tmp_path, {"threshold": 0.1234567, "val": {}})
    written = json.loads((tmp_path / "metadata.json").read_text())
    assert written["thresholds"] == {"min_confidence": 0.5, "malignancy": 0.123457}
    assert written["files"] == {"a": "b"}
    assert written["malignancy_threshold"]["threshold"] == 0.1234567


class _StandInClassifier:
    """What ``score_split`` uses of a Classifier: one version, served by one engine file."""

    version, input_size, preprocessing, gate, classes = "v1", (16, 16), "efficientnet_lite", None, []

    def __init__(self, engine_key, offset):
        self.engine_key, self.offset = engine_key, offset  # as Classifier.engine_key names them

    def forward(self, batch):
        n = len(batch)
        return np.full((n, 3), self.offset, dtype=np.float32), np.zeros((n, 4), dtype=np.float32)


def test_score_cache_keeps_engines_of_one_version_apart(tmp_path):
    """The int8 file's logits are not the Keras model's: a cache filled by one engine must not
    answer for the other (the fusion and threshold reports name the engine they measured)."""
    from PIL import Image

    from ml.data import Sample
    from ml.thresholds import score_split

    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"p{i}.png"))
        Image.new("RGB", (20, 20), (40 * i, 90, 120)).save(paths[-1])
    samples = [Sample(path=p, label="nv", source="csv", group=p) for p in paths]
    cache = tmp_path / "scores"
    keras_scores = score_split(_StandInClassifier("model", 1.0), samples, cache_dir=cache)
    int8_scores = score_split(_StandInClassifier("model_int8", 2.0), samples, cache_dir=cache)
    flipped = score_split(_StandInClassifier("model_int8-flips4", 4.0), samples, cache_dir=cache)
    assert keras_scores["logits"][0, 0] == 1.0 and int8_scores["logits"][0, 0] == 2.0 and flipped["logits"][0, 0] == 4.0
    assert sorted(p.name.rsplit("-", 1)[0] for p in cache.iterdir()) == \
        ["scores-v1-model", "scores-v1-model_int8", "scores-v1-model_int8-flips4"]
    # the same engine again is answered from its cache
    again = score_split(_StandInClassifier("model_int8", 3.0), samples, cache_dir=cache)
    assert again["logits"][0, 0] == 2.0


def test_every_source_rule_takes_the_lowest_of_the_sources_own_thresholds():
    from ml.thresholds import threshold_for_sources

    # dermoscopic malignant photos score high, clinical ones low: pooled, the 20 dermoscopic
    # photos carry the target and the clinical source is caught at 0 %; per source it reaches 95 %.
    scores = np.r_[np.linspace(0.6, 0.99, 20), np.linspace(0.05, 0.3, 20), [0.5, 0.02]]
    labels = ["mel"] * 20 + ["bcc"] * 20 + ["nv", "nv"]
    sources = ["ham"] * 20 + ["fitz17k"] * 20 + ["ham", "fitz17k"]
    pooled, _ = threshold_for_sources(scores, labels, sources, None, 0.5, "malignant", "pooled")
    every, own = threshold_for_sources(scores, labels, sources, None, 0.95, "malignant", "every_source")
    assert set(own) == {"ham", "fitz17k"}
    assert every == pytest.approx(min(own.values())) == pytest.approx(own["fitz17k"])
    clinical = np.array(sources) == "fitz17k"
    caught = (scores >= every) & np.isin(labels, ["bcc"])
    assert caught[clinical].sum() / 20 >= 0.95
    assert np.mean(scores[clinical][:20] >= pooled) == 0.0  # the pooled 50 % target missed them all
    # melanomas only: fitz17k has none, so only HAM sets the threshold
    mel_only, own_mel = threshold_for_sources(scores, labels, sources, None, 0.95, "melanoma", "every_source")
    assert set(own_mel) == {"ham"} and mel_only > 0.6
    with pytest.raises(ValueError):
        threshold_for_sources(scores, labels, sources, rule="median")


def test_operating_points_per_group_skip_photos_without_one():
    from ml.thresholds import per_source

    scores = np.array([0.9, 0.1, 0.8, 0.3])
    points = per_source(scores, ["mel", "bcc", "nv", "nv"], ["1-2", "5-6", None, "5-6"], 0.5, np.ones(4, bool))
    assert set(points) == {"1-2", "5-6"}
    assert points["5-6"]["malignant_sensitivity"] == 0.0 and points["5-6"]["false_alarm_rate"] == 0.0
    assert points["1-2"]["malignant_sensitivity"] == 1.0


def test_per_kind_thresholds_hold_each_kind_to_its_own_sources():
    from ml.thresholds import operating_point, per_photo_threshold, thresholds_by_kind

    # dermoscopic malignant photos score 0.5-0.9, clinical ones 0.1-0.3; benign photos of each kind
    # score just under their kind's malignant photos
    rng = np.random.default_rng(0)
    d_mal, c_mal = rng.uniform(0.5, 0.9, 40), rng.uniform(0.1, 0.3, 40)
    d_ben, c_ben = rng.uniform(0.3, 0.45, 40), rng.uniform(0.0, 0.08, 40)
    scores = np.r_[d_mal, d_ben, c_mal, c_ben]
    labels = ["mel"] * 40 + ["nv"] * 40 + ["scc"] * 40 + ["ad"] * 40
    sources = ["ham"] * 80 + ["fitz17k"] * 80
    kinds = ["dermoscopic"] * 80 + ["clinical"] * 80
    by_kind = thresholds_by_kind(scores, labels, sources, kinds)
    assert by_kind["clinical"] < 0.3 < 0.45 < by_kind["dermoscopic"]
    per_photo = per_photo_threshold(by_kind, kinds, fallback=min(by_kind.values()))
    point = operating_point(scores, labels, per_photo)
    assert point["threshold"] is None and point["malignant_sensitivity"] >= 0.95
    # one threshold for both kinds would have to be the clinical one: every dermoscopic nevus urgent
    assert operating_point(scores[:80], labels[:80], by_kind["clinical"])["false_alarm_rate"] == 1.0
    assert operating_point(scores[:80], labels[:80], per_photo[:80])["false_alarm_rate"] == 0.0
    # a kind never seen falls back
    assert per_photo_threshold(by_kind, ["unknown"], 0.01).tolist() == [0.01]
