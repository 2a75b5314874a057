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


def test_the_threshold_of_the_photos_kind_and_the_overall_one_for_any_other(settings, tmp_path):
    settings.ML_MODEL_DIR = _model_dir(tmp_path, {"malignancy": 0.05,
                                                  "malignancy_by_kind": {"dermoscopic": 0.2, "clinical": 0.05,
                                                                         "drawing": 7}})
    assert malignancy_threshold("dermoscopic") == pytest.approx(0.2)
    assert malignancy_threshold("clinical") == pytest.approx(0.05)
    assert malignancy_threshold(None) == malignancy_threshold("drawing") == pytest.approx(0.05)  # 7 is ignored


@pytest.mark.django_db
def test_a_stored_result_keeps_its_kind_and_the_triage_uses_its_threshold(settings, tmp_path, submission_factory):
    from guidance.selectors import submission_triage
    from tests.diagnosis.lesion_helpers import finish

    settings.ML_MODEL_DIR = _model_dir(tmp_path, {"malignancy": 0.1,
                                                  "malignancy_by_kind": {"dermoscopic": 0.4, "clinical": 0.1}})
    probabilities = {"nv": 0.75, "bcc": 0.25}  # 25 % skin cancer: urgent under 0.1, not under 0.4
    dermoscopic = finish(submission_factory(), probabilities, kind="dermoscopic")
    clinical = finish(submission_factory(), probabilities, kind="clinical")
    unknown = finish(submission_factory(), probabilities)
    assert (dermoscopic.photo_kind, clinical.photo_kind, unknown.photo_kind) == ("dermoscopic", "clinical", "")
    assert submission_triage(clinical).tier == "urgent"
    assert submission_triage(unknown).tier == "urgent"  # no kind: the stricter overall threshold
    assert submission_triage(dermoscopic).tier != "urgent"
