"""Fill Condition.synonyms from guidance/data/synonyms.json where staff have not written any.

No referral contacts are added: staff enter real ones in the admin (see README).
"""

import json
from pathlib import Path

from django.db import migrations

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "synonyms.json"


def load(apps, schema_editor):
    Condition = apps.get_model("guidance", "Condition")
    for code, words in json.loads(DATA_FILE.read_text(encoding="utf-8"))["synonyms"].items():
        Condition.objects.filter(code=code, synonyms="").update(synonyms="\n".join(words))


class Migration(migrations.Migration):
    dependencies = [("guidance", "0003_assistant_and_referrals")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
