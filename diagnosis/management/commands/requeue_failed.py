"""Send failed analyses back to the queue, after the cause was fixed (a missing or corrupt model, say).

Why: a broken model artifact fails every upload with the reason ("The classifier is unavailable
(... fails its sha256 check)") and keeps the photos. Once the artifact is fixed, this re-queues them
in one go (the admin's "Re-queue failed" action does the same for a selection); each re-queue is
in the audit log. The worker loads the fixed artifact by itself: a failed load is not cached.
``--since`` limits it to recent failures, ``--reason`` to failures whose reason contains a text.
"""

import argparse
import re
from datetime import datetime, time, timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from diagnosis import recovery

DURATION = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """'30m', '2h', '7d' (ago), an ISO date ('2026-11-26', from midnight) or an ISO date-time."""
    match = DURATION.match(value.strip())
    if match:
        return timezone.now() - timedelta(**{UNITS[match[2]]: int(match[1])})
    when = parse_datetime(value)
    if when is None:
        day = parse_date(value)
        if day is None:
            raise argparse.ArgumentTypeError(f"{value!r}: give e.g. 2h, 3d, 2026-11-26 or 2026-11-26T14:00")
        when = datetime.combine(day, time.min)
    return timezone.make_aware(when) if timezone.is_naive(when) else when


class Command(BaseCommand):
    help = "Re-queue failed submissions (after fixing the model, say)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be re-queued.")
        parser.add_argument("--since", type=parse_since, default=None,
                            help="Only failures since then: 2h, 3d, 2026-11-26 or 2026-11-26T14:00.")
        parser.add_argument("--reason", default="", help="Only failures whose reason contains this text.")

    def handle(self, *args, dry_run=False, since=None, reason="", **options):
        sweep = recovery.requeue_failed(since, reason, dry_run=dry_run)
        self.stdout.write(f"{'Would re-queue' if dry_run else 'Re-queued'} {len(sweep.sent)} failed submission(s).")
