"""E-mail the owners of lesions whose re-photograph reminder fell due.

Why: a spot is only followed if it is photographed again; the urgency of its latest result
sets when (diagnosis/reminders.py). Celery beat runs the same thing hourly
(``diagnosis.send_due_reminders``); this command is for cron-only deployments and for checking
what would go out (``--dry-run``). Each reminder is sent once, so running it twice is harmless.
"""

from django.core.management.base import BaseCommand

from diagnosis.reminders import due_lesions, send_due_reminders


class Command(BaseCommand):
    help = "Send the re-photograph reminders that are due (once each)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count the reminders that would be sent.")

    def handle(self, *args, dry_run=False, **options):
        lesions = send_due_reminders(dry_run=dry_run)
        verb = "Would send" if dry_run else "Sent"
        self.stdout.write(f"{verb} {len(lesions)} reminder(s).")
        if dry_run:
            skipped = due_lesions().count() - len(lesions)
            if skipped:
                self.stdout.write(f"{skipped} due lesion(s) have an owner without an e-mail address.")
