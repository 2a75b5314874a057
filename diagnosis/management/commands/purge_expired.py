"""Delete photos (and their results) older than RETENTION_DAYS, and stored files nobody owns.

Why: we keep health photos no longer than we said we would. RETENTION_DAYS = 0
(the default) keeps everything; the command then does nothing but say so.
Lesions older than the period that have no photo left go too. Deletion is
immediate (there is no soft delete: a user's "delete" removes rows and files at
once), so this is also the safety net for files whose deletion failed:
``--orphans`` removes stored files that no submission refers to, if they are
older than an hour (younger ones may belong to an upload still being saved).

Run it from cron or a Celery beat schedule; ``--dry-run`` first.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Submission
from diagnosis.storage import photo_storage

ORPHAN_GRACE = timedelta(hours=1)
PHOTO_DIR = "submissions"
FILE_DIRS = (PHOTO_DIR, "heatmaps")  # the photos and their explanation overlays (same storage)


class Command(BaseCommand):
    help = "Delete photos older than RETENTION_DAYS (and, with --orphans, stored files without a row)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only report what would be deleted.")
        parser.add_argument("--orphans", action="store_true", help="Also delete stored files without a row.")

    def handle(self, *args, dry_run=False, orphans=False, **options):
        verb = "Would delete" if dry_run else "Deleted"
        days = settings.RETENTION_DAYS
        if days <= 0:
            self.stdout.write("RETENTION_DAYS is 0: photos are kept until their owner deletes them.")
        else:
            if dry_run:
                photos = services.expired_submissions(days).count()
                lesions = services.empty_expired_lesions(days).count()
            else:
                now = timezone.now()  # one cutoff for both steps
                photos = services.delete_submissions(services.expired_submissions(days, now))
                lesions = 0
                for lesion in services.empty_expired_lesions(days, now):
                    services.delete_lesion(lesion)  # one by one: audited, and the entries redacted
                    lesions += 1
            self.stdout.write(f"{verb} {photos} photo(s) and {lesions} empty lesion(s) older than {days} days.")
        if orphans:
            names = self._orphans()
            if not dry_run:
                storage = photo_storage()
                for name in names:
                    storage.delete(name)
            self.stdout.write(f"{verb} {len(names)} orphan file(s).")

    def _orphans(self):
        storage = photo_storage()
        known = {name for pair in Submission.objects.values_list("image", "heatmap") for name in pair if name}
        cutoff = timezone.now() - ORPHAN_GRACE
        names = []
        for directory in FILE_DIRS:
            if storage.exists(directory):
                names += [f"{directory}/{f}" for f in storage.listdir(directory)[1]]
        return [n for n in names if n not in known and storage.get_modified_time(n) < cutoff]
