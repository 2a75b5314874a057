"""Where the malignancy threshold comes from: the model's metadata, else the setting, else the default."""

from __future__ import annotations

import json

import pytest

from guidance.selectors import malignancy_threshold
from guidance.triage import DEFAULT_MALIGNANCY_THRESHOLD


def _model_dir(tmp_path, thresholds):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "metadata.json").write_text(json.dumps({"version": "x", "thresholds": thresholds}))
    return directory


def test_metadata_value_wins(settings, tmp_path):
    settings.ML_MODEL_DIR = _model_dir(tmp_path, {"min_confidence": 0.5, "malignancy": 0.12})
    settings.MALIGNANCY_THRESHOLD = 0.3
    assert malignancy_threshold() == pytest.approx(0.12)


def test_setting_when_the_metadata_has_none(settings, tmp_path):
    settings.ML_MODEL_DIR = _model_dir(tmp_path, {"min_confidence": 0.5})
    settings.MALIGNANCY_THRESHOLD = 0.3
    assert malignancy_threshold() == pytest.approx(0.3)


def test_default_without_setting_or_metadata(settings, tmp_path):
    settings.ML_MODEL_DIR = tmp_path / "missing"
    if hasattr(settings, "MALIGNANCY_THRESHOLD"):
        del settings.MALIGNANCY_THRESHOLD
    assert malignancy_threshold() == DEFAULT_MALIGNANCY_THRESHOLD


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, "high", None])
def test_a_value_that_is_not_a_probability_is_ignored(settings, tmp_path, bad):
    settings.ML_MODEL_DIR = _model_dir(tmp_path, {"malignancy": bad})
    settings.MALIGNANCY_THRESHOLD = 0.3
    assert malignancy_threshold() == pytest.approx(0.3)


def test_the_shipped_model_gives_a_probability(settings):
    assert 0.0 < malignancy_threshold() < 1.0
