"""Load the condition knowledge base from guidance/data/conditions.json.

Entries that already exist (matched by code) are left alone, so re-running the
migration never overwrites what staff edited in the admin. Later changes to the
JSON file reach the database only for new codes; edit existing rows in the admin.
"""

import json
from pathlib import Path

from django.db import migrations

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "conditions.json"


def row_values(entry):
    """The model field values of one JSON entry (lists become one item per line)."""
    values = dict(entry)
    values.pop("code")
    values["red_flags"] = "\n".join(entry["red_flags"])
    values["sources"] = "\n".join(entry["sources"])
    return values


def load(apps, schema_editor):
    Condition = apps.get_model("guidance", "Condition")
    for entry in json.loads(DATA_FILE.read_text(encoding="utf-8"))["conditions"]:
        Condition.objects.get_or_create(code=entry["code"], defaults=row_values(entry))


def unload(apps, schema_editor):
    Condition = apps.get_model("guidance", "Condition")
    codes = [entry["code"] for entry in json.loads(DATA_FILE.read_text(encoding="utf-8"))["conditions"]]
    Condition.objects.filter(code__in=codes).delete()


class Migration(migrations.Migration):
    dependencies = [("guidance", "0001_conditions")]

    operations = [migrations.RunPython(load, unload)]
