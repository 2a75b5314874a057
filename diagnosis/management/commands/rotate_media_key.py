"""Re-encrypt every stored photo (and heatmap overlay) with the current MEDIA_ENCRYPTION_KEY.

Why: rotating the key (a suspected leak, a routine change) is only finished when
no file still needs an old key. Steps: set the new key as MEDIA_ENCRYPTION_KEY
and the old one in MEDIA_ENCRYPTION_OLD_KEYS, restart, run this command
(``--dry-run`` first), then remove the old key from the environment.

Each photo is written under a new random name, the row is pointed at it, and
only then is the old file deleted: an interruption leaves at worst an unused
file, never a row without its photo. Running it twice is harmless (files
already under the current key are skipped). Files stored in plain text (from
before encryption existed) are encrypted too when they decode as JPEG.
"""

import io

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from PIL import Image

from diagnosis.models import Submission, heatmap_upload_to, submission_upload_to
from diagnosis.storage import fernet, photo_storage


def _is_jpeg(data):
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format == "JPEG"
    except Exception:  # noqa: BLE001
        return False


UPLOAD_TO = {"image": submission_upload_to, "heatmap": heatmap_upload_to}


def _stored_files():
    """(submission, field, name) for every stored photo and explanation overlay."""
    for field in UPLOAD_TO:
        for submission in Submission.objects.exclude(**{field: ""}).only("pk", field).iterator():
            yield submission, field, getattr(submission, field).name


class Command(BaseCommand):
    help = "Re-encrypt stored photos with the current media key (after adding a new key)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be re-encrypted.")

    def handle(self, *args, dry_run=False, **options):
        storage = photo_storage()
        current = Fernet(settings.MEDIA_ENCRYPTION_KEYS[0])
        every_key = fernet()
        counts = {"current": 0, "rotated": 0, "plaintext": 0, "missing": 0, "unreadable": 0}
        for submission, field, name in _stored_files():
            if not storage.exists(name):
                counts["missing"] += 1
                self.stderr.write(f"missing {field} file for submission {submission.pk}")
                continue
            raw = storage.read_raw(name)
            try:
                current.decrypt(raw)
                counts["current"] += 1
                continue
            except InvalidToken:
                pass
            try:
                plain = every_key.decrypt(raw)
                kind = "rotated"
            except InvalidToken:
                if field != "image" or not _is_jpeg(raw):  # heatmaps were encrypted from the start
                    counts["unreadable"] += 1
                    self.stderr.write(f"submission {submission.pk}: no configured key opens its file")
                    continue
                plain, kind = raw, "plaintext"
            counts[kind] += 1
            if dry_run:
                continue
            new_name = storage.save(UPLOAD_TO[field](submission, name), ContentFile(plain))
            Submission.objects.filter(pk=submission.pk).update(**{field: new_name})
            storage.delete(name)
        prefix = "Would re-encrypt" if dry_run else "Re-encrypted"
        self.stdout.write(
            f"{prefix} {counts['rotated']} file(s) under an old key and {counts['plaintext']} plain file(s); "
            f"{counts['current']} already current, {counts['missing']} missing, {counts['unreadable']} unreadable."
        )
        if counts["unreadable"] or counts["missing"]:
            self.stderr.write("Some photos could not be processed; keep the old keys until this is resolved.")
