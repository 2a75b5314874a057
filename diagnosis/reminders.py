"""Reminders to photograph a lesion again, after a period that depends on its latest urgency tier.

When an analysis finishes (``schedule_reminder``, called after ``store_result`` commits), the
lesion's ``remind_at`` becomes *finished_at + REMINDER_DAYS[tier]* and ``reminder_sent_at`` is
cleared, so each new photo restarts the clock. The defaults (``settings.REMINDER_DAYS``):

* ``urgent`` 14 days — the advice is to see a doctor within 2 weeks: ask then whether the spot
  was seen and for a new photo to compare;
* ``soon`` 30 days — "in the coming weeks": a month on, check whether it changed;
* ``routine`` 90 days — three months, the usual interval for photographing a mole to watch it;
* ``self_care`` 30 days — self-care should have helped within about four weeks; if not, the
  advice is to see a pharmacist or GP.

A photo the model could not assess (rejected as not skin) gets no reminder; a failed analysis
is not final advice either. ``send_due_reminders`` e-mails each owner once per due lesion
(``reminder_sent_at`` makes it idempotent) through the configured ``EMAIL_BACKEND``; it runs
hourly from Celery beat and as ``manage.py send_reminders``. The e-mail names no condition and
no result: only the spot's name (which the owner chose) and a link to its page.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from guidance.selectors import submission_triage

from .models import Lesion, Submission

logger = logging.getLogger(__name__)

DEFAULT_REMINDER_DAYS = {"urgent": 14, "soon": 30, "routine": 90, "self_care": 30}
SUBJECT = "Time for a new photo of your spot"


def reminder_days(tier: str) -> int:
    days = {**DEFAULT_REMINDER_DAYS, **getattr(settings, "REMINDER_DAYS", {})}
    return int(days[tier])


def schedule_reminder(submission_id: int) -> bool:
    """Set the lesion's reminder from a finished analysis; False when it gets none (not done)."""
    submission = (Submission.objects.select_related("lesion").prefetch_related("predictions")
                  .filter(pk=submission_id).first())
    if submission is None or submission.status != Submission.Status.DONE:
        return False
    result = submission_triage(submission)
    when = (submission.finished_at or timezone.now()) + timedelta(days=reminder_days(result.tier))
    lesion = submission.lesion
    # Only the latest analysis of the lesion sets its reminder: an old photo re-analysed later
    # must not push the reminder back.
    latest = lesion.submissions.filter(status=Submission.Status.DONE).order_by("-created_at", "-pk").first()
    if latest is not None and latest.pk != submission.pk:
        return False
    Lesion.objects.filter(pk=lesion.pk).update(remind_at=when, reminder_sent_at=None)
    return True


def due_lesions(now=None):
    """Lesions whose reminder fell due and was not sent yet (all owners: for the sender)."""
    now = now or timezone.now()
    return Lesion.objects.filter(remind_at__lte=now, reminder_sent_at__isnull=True)


def due_lesions_for(user, now=None):
    """The user's lesions due for a new photo (the site banner shows them until one is added)."""
    now = now or timezone.now()
    return Lesion.objects.for_owner(user).filter(remind_at__lte=now).order_by("remind_at", "pk")


def _message(lesion) -> str:
    url = settings.SITE_URL + reverse("diagnosis:lesion-detail", args=[lesion.uuid])
    return (
        f"Hello {lesion.owner.get_username()},\n\n"
        f"It is time to photograph your spot “{lesion.name}” again, so you can compare it with the "
        f"earlier photos and see whether it has changed:\n\n{url}\n\n"
        "If the spot bleeds, grows, changes colour or shape, or worries you, see a doctor whatever "
        "any result says. This service does not give a diagnosis.\n"
    )


def send_due_reminders(now=None, dry_run: bool = False) -> list[Lesion]:
    """E-mail each owner once per due lesion; returns the lesions reminded (or that would be).

    Each lesion is claimed with a conditional UPDATE (``reminder_sent_at IS NULL``) before its
    e-mail goes out, so two runs at once never send twice; if sending fails, the claim is undone
    so the next run tries again.
    """
    now = now or timezone.now()
    lesions = list(due_lesions(now).select_related("owner").order_by("remind_at", "pk"))
    if dry_run:
        return [lesion for lesion in lesions if lesion.owner.email]
    sent = []
    for lesion in lesions:
        if not lesion.owner.email:
            continue
        with transaction.atomic():
            claimed = Lesion.objects.filter(pk=lesion.pk, reminder_sent_at__isnull=True,
                                            remind_at=lesion.remind_at).update(reminder_sent_at=now)
        if not claimed:
            continue
        try:
            send_mail(SUBJECT, _message(lesion), None, [lesion.owner.email])
        except Exception:  # noqa: BLE001 - one bad address must not stop the others
            logger.exception("could not send the reminder for lesion %s", lesion.pk)
            Lesion.objects.filter(pk=lesion.pk, reminder_sent_at=now).update(reminder_sent_at=None)
            continue
        sent.append(lesion)
    return sent
