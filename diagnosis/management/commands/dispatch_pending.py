"""Send the analysis of queued photos that the broker never accepted (or lost): the outbox sweeper.

Why: an upload made while Redis was down is saved and shown as queued, with its outbox marker
(``enqueued_at``) empty; a Redis restart without persistence loses tasks it had accepted. Celery
beat runs this every 30 seconds (``diagnosis.dispatch_pending``); run it by hand after an outage
if beat is not running, ``--dry-run`` first. Sending twice is harmless: analysis claims the row.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand

from diagnosis import recovery


class Command(BaseCommand):
    help = "Send the analysis of queued submissions the broker never accepted or lost (the outbox)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be sent.")
        parser.add_argument("--older-than", type=int, metavar="SECONDS", default=None,
                            help="Leave alone uploads younger than this (default ANALYSIS_DISPATCH_GRACE_SECONDS).")

    def handle(self, *args, dry_run=False, older_than=None, **options):
        grace = None if older_than is None else timedelta(seconds=older_than)
        sweep = recovery.dispatch_pending(older_than=grace, dry_run=dry_run)
        verb = "Would send" if dry_run else "Sent"
        self.stdout.write(f"{verb} {len(sweep.sent)} queued submission(s) to the broker.")
        if sweep.unsent:
            self.stderr.write(f"The broker refused; {len(sweep.unsent)} submission(s) stay queued for the next run.")
