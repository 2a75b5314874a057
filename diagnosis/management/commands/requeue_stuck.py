"""Re-queue analyses stuck in 'processing'; mark them failed, with the reason, after too many starts.

Why: a worker killed outright leaves its submission 'processing' until Redis's visibility timeout
(an hour) gives the task back, or forever if the broker lost it. Celery beat runs this every
minute (``diagnosis.requeue_stuck``): 'processing' for longer than ANALYSIS_STUCK_AFTER_SECONDS
goes back to the queue, and after ANALYSIS_MAX_ATTEMPTS starts it is marked failed, the photo kept.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from diagnosis import recovery


class Command(BaseCommand):
    help = "Re-queue submissions stuck in processing; fail them after ANALYSIS_MAX_ATTEMPTS starts."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be done.")
        parser.add_argument("--limit", type=int, metavar="SECONDS", default=None,
                            help="Stuck after this long (default ANALYSIS_STUCK_AFTER_SECONDS).")
        parser.add_argument("--max-attempts", type=int, default=None,
                            help="Starts before giving up (default ANALYSIS_MAX_ATTEMPTS).")

    def handle(self, *args, dry_run=False, limit=None, max_attempts=None, **options):
        limit = settings.ANALYSIS_STUCK_AFTER if limit is None else timedelta(seconds=limit)
        sweep = recovery.requeue_stuck(limit, max_attempts, dry_run=dry_run)
        would = "Would re-queue" if dry_run else "Re-queued"
        self.stdout.write(f"{would} {len(sweep.sent)} stuck submission(s); "
                          f"{'would mark' if dry_run else 'marked'} {len(sweep.failed)} failed after too many attempts.")
        if sweep.unsent:
            self.stderr.write(f"The broker refused; {len(sweep.unsent)} submission(s) are queued for dispatch_pending.")
