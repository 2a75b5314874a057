"""Every class the model knows has a complete, sourced entry, loaded by the data migration and editable."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.conf import settings

from guidance.models import Category, Condition
from guidance.triage import TIERS
from ml.classes import ALL_LABELS

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DATA = json.loads((ROOT / "guidance" / "data" / "conditions.json").read_text(encoding="utf-8"))
MIN_WORDS = {"summary": 15, "description": 40, "appearance": 15, "causes_and_risk_factors": 10,
             "usual_treatments": 10}


def codes_the_model_knows():
    """``ml.classes.ALL_LABELS`` and the classes of every shipped model artifact."""
    codes = set(ALL_LABELS)
    for metadata in sorted(Path(settings.ML_ARTIFACTS_DIR).glob("*/metadata.json")):
        codes |= {entry["code"] for entry in json.loads(metadata.read_text())["classes"]}
    return codes


def test_the_shipped_artifact_is_among_the_sources_of_codes():
    assert (Path(settings.ML_ARTIFACTS_DIR) / settings.ML_MODEL_NAME / "metadata.json").exists()
    assert "other" in codes_the_model_knows()


@pytest.mark.parametrize("code", sorted(codes_the_model_knows()))
def test_every_known_class_has_a_complete_entry(code):
    condition = Condition.objects.filter(code=code).first()
    assert condition is not None, f"no condition entry for class {code!r}"
    assert condition.missing_fields() == [], f"{code}: incomplete ({condition.missing_fields()})"
    for field, words in MIN_WORDS.items():
        assert len(getattr(condition, field).split()) >= words, f"{code}.{field} is too short to be useful"
    assert len(condition.red_flag_list()) >= 2
    sources = condition.source_list()
    assert len(sources) >= 2 and all(url.startswith("https://") for _title, url in sources), sources


def test_the_json_file_has_exactly_the_known_codes_and_valid_values():
    codes = [entry["code"] for entry in DATA["conditions"]]
    assert len(codes) == len(set(codes))
    assert set(codes) == codes_the_model_knows()
    for entry in DATA["conditions"]:
        assert entry["category"] in Category.values and entry["urgency"] in TIERS, entry["code"]
        assert isinstance(entry["contagious"], bool)


@pytest.mark.parametrize("code,category", [("mel", "cancer"), ("bcc", "cancer"), ("scc", "cancer"),
                                           ("akiec", "precancerous"), ("nv", "benign"), ("tinea", "infection"),
                                           ("ad", "inflammatory"), ("other", "other")])
def test_severity_categories(code, category):
    assert Condition.objects.get(code=code).category == category


def test_only_the_infection_is_marked_contagious():
    assert set(Condition.objects.filter(contagious=True).values_list("code", flat=True)) == {"tinea"}


def test_missing_fields_reports_an_incomplete_entry():
    condition = Condition.objects.get(code="df")
    condition.appearance = "  "
    condition.sources = "Somewhere without a link"
    condition.urgency = "whenever"
    assert set(condition.missing_fields()) == {"appearance", "urgency", "sources (no URL)"}


def test_rerunning_the_data_migration_keeps_admin_edits_and_adds_missing_codes():
    migration = importlib.import_module("guidance.migrations.0002_load_conditions")
    Condition.objects.filter(code="mel").update(summary="Edited by staff.")
    Condition.objects.filter(code="df").delete()
    migration.load(django_apps, None)
    assert Condition.objects.get(code="mel").summary == "Edited by staff."
    assert Condition.objects.get(code="df").missing_fields() == []
    assert Condition.objects.count() == len(DATA["conditions"])


def test_source_lines_split_into_title_and_url():
    condition = Condition(sources="NHS: Moles https://www.nhs.uk/conditions/moles/\n\nA book, page 3\n")
    assert condition.source_list() == [("NHS: Moles", "https://www.nhs.uk/conditions/moles/"),
                                       ("A book, page 3", "")]
