from django.db import migrations


def drop_drf_tokens(apps, schema_editor):
    # API tokens are knox's now (hashed, expiring). DRF's keys were stored in plain text and never
    # expired; nothing accepts them any more, so they are not kept. Clients log in again for a token.
    apps.get_model("authtoken", "Token").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_consent"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [
        migrations.RunPython(drop_drf_tokens, migrations.RunPython.noop),
    ]
