"""Re-photograph reminders: scheduled from the urgency when an analysis is stored, e-mailed once, shown as a banner."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from diagnosis import analysis, reminders
from diagnosis.models import Lesion, Submission
from tests.diagnosis.lesion_helpers import finish

pytestmark = pytest.mark.django_db

# Probabilities (and answers) that give each urgency tier under guidance/triage.py.
TIER_CASES = [
    ("urgent", {"mel": 0.6, "nv": 0.3}, []),
    ("soon", {"nv": 0.9, "mel": 0.01}, ["itching"]),  # a minor sign on a spot
    ("routine", {"nv": 0.92, "mel": 0.01}, []),
    ("self_care", {"ad": 0.95}, []),
]


def finish_committed(django_capture_on_commit_callbacks, submission, probabilities, **kwargs):
    """Store a result and run what waits for the commit (the reminder hook), as in production."""
    with django_capture_on_commit_callbacks(execute=True):
        finish(submission, probabilities, **kwargs)
    submission.lesion.refresh_from_db()
    submission.refresh_from_db()
    return submission


@pytest.mark.parametrize("tier,probabilities,symptoms", TIER_CASES, ids=[c[0] for c in TIER_CASES])
def test_a_finished_analysis_sets_the_reminder_from_its_tier(tier, probabilities, symptoms, submission_factory,
                                                             django_capture_on_commit_callbacks, settings):
    from guidance.selectors import submission_triage

    submission = submission_factory(symptoms=symptoms)
    Lesion.objects.filter(pk=submission.lesion.pk).update(reminder_sent_at=timezone.now())
    finish_committed(django_capture_on_commit_callbacks, submission, probabilities)
    assert submission_triage(submission).tier == tier
    lesion = submission.lesion
    assert lesion.remind_at == submission.finished_at + timedelta(days=settings.REMINDER_DAYS[tier])
    assert lesion.reminder_sent_at is None  # a new photo restarts the clock


def test_default_periods():
    assert reminders.DEFAULT_REMINDER_DAYS == {"urgent": 14, "soon": 30, "routine": 90, "self_care": 30}


def test_the_periods_come_from_settings(submission_factory, django_capture_on_commit_callbacks, settings):
    settings.REMINDER_DAYS = {**settings.REMINDER_DAYS, "routine": 7}
    submission = finish_committed(django_capture_on_commit_callbacks, submission_factory(), {"nv": 0.92})
    assert submission.lesion.remind_at == submission.finished_at + timedelta(days=7)


def test_no_reminder_for_a_photo_that_could_not_be_assessed(submission_factory, django_capture_on_commit_callbacks):
    submission = finish_committed(django_capture_on_commit_callbacks, submission_factory(), {"nv": 0.9},
                                  status="rejected")
    assert submission.status == Submission.Status.REJECTED and submission.lesion.remind_at is None


def test_an_older_photo_analysed_late_does_not_move_the_reminder(submission_factory,
                                                                  django_capture_on_commit_callbacks):
    old = submission_factory()
    Submission.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    new = finish_committed(django_capture_on_commit_callbacks, submission_factory(lesion=old.lesion), {"mel": 0.7})
    remind_at = new.lesion.remind_at
    old = finish_committed(django_capture_on_commit_callbacks, old, {"nv": 0.95})
    assert old.lesion.remind_at == remind_at


def test_the_real_analysis_path_schedules_it(submission_factory, use_tiny_model, django_capture_on_commit_callbacks):
    submission = submission_factory()
    with django_capture_on_commit_callbacks(execute=True):
        assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    submission.lesion.refresh_from_db()
    assert submission.lesion.remind_at is not None and submission.lesion.remind_at > timezone.now()


# --- sending ---------------------------------------------------------------------------------------


def due(lesion, days_ago=1):
    Lesion.objects.filter(pk=lesion.pk).update(remind_at=timezone.now() - timedelta(days=days_ago),
                                               reminder_sent_at=None)
    lesion.refresh_from_db()
    return lesion


def test_due_reminders_are_emailed_once(submission_factory, settings, user):
    settings.SITE_URL = "https://spots.example.org"
    lesion = due(finish(submission_factory(lesion_name="Mole on my back"), {"mel": 0.8}).lesion)
    sent = reminders.send_due_reminders()
    assert sent == [lesion] and len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email]
    assert message.subject == reminders.SUBJECT
    assert "Mole" not in message.subject and "elanoma" not in message.subject  # no health data in the subject
    assert "https://spots.example.org" + reverse("diagnosis:lesion-detail", args=[lesion.uuid]) in message.body
    assert "Mole on my back" in message.body and "not give a diagnosis" in message.body
    assert "elanoma" not in message.body  # no result in the e-mail either
    lesion.refresh_from_db()
    assert lesion.reminder_sent_at is not None
    assert reminders.send_due_reminders() == [] and len(mail.outbox) == 1  # idempotent


def test_reminders_not_yet_due_or_without_date_are_not_sent(submission_factory):
    future = submission_factory().lesion
    Lesion.objects.filter(pk=future.pk).update(remind_at=timezone.now() + timedelta(days=3))
    submission_factory()  # no remind_at at all
    assert reminders.send_due_reminders() == [] and mail.outbox == []


def test_one_email_per_due_lesion_to_its_own_owner(submission_factory, other_user, user):
    mine = [due(submission_factory().lesion), due(submission_factory().lesion)]
    theirs = due(submission_factory(owner=other_user).lesion)
    sent = reminders.send_due_reminders()
    assert set(sent) == {*mine, theirs}
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == sorted([user.email, user.email, other_user.email])
    theirs_mail = next(m for m in mail.outbox if m.to == [other_user.email])
    assert str(theirs.uuid) in theirs_mail.body and all(str(l.uuid) not in theirs_mail.body for l in mine)


def test_owner_without_an_email_address_is_skipped(submission_factory, django_user_model):
    nobody = django_user_model.objects.create_user("no-mail", "", "a-long-Passphrase-42")
    lesion = due(submission_factory(owner=nobody).lesion)
    assert reminders.send_due_reminders() == [] and mail.outbox == []
    lesion.refresh_from_db()
    assert lesion.reminder_sent_at is None


def test_a_failed_send_is_retried_next_time(submission_factory, monkeypatch):
    lesion = due(submission_factory().lesion)

    def broken(*args, **kwargs):
        raise OSError("smtp down")

    monkeypatch.setattr(reminders, "send_mail", broken)
    assert reminders.send_due_reminders() == []
    lesion.refresh_from_db()
    assert lesion.reminder_sent_at is None
    monkeypatch.undo()
    assert reminders.send_due_reminders() == [lesion] and len(mail.outbox) == 1


def test_command_dry_run_sends_nothing(submission_factory, capsys):
    lesion = due(submission_factory().lesion)
    call_command("send_reminders", "--dry-run")
    assert "Would send 1 reminder(s)." in capsys.readouterr().out and mail.outbox == []
    lesion.refresh_from_db()
    assert lesion.reminder_sent_at is None
    call_command("send_reminders")
    assert "Sent 1 reminder(s)." in capsys.readouterr().out and len(mail.outbox) == 1
    call_command("send_reminders")
    assert "Sent 0 reminder(s)." in capsys.readouterr().out and len(mail.outbox) == 1


def test_periodic_task_is_scheduled_and_sends(submission_factory, settings):
    from diagnosis.periodic_tasks import send_due_reminders
    from skinsite.celery import app

    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "diagnosis.send_due_reminders"]
    assert len(entries) == 1 and entries[0]["schedule"] <= 3600
    assert "diagnosis.send_due_reminders" in app.tasks
    due(submission_factory().lesion)
    assert send_due_reminders.delay().get() == 1 and len(mail.outbox) == 1


# --- the banner ------------------------------------------------------------------------------------


def test_banner_on_every_page_for_the_owner_of_a_due_lesion(owner_client, submission_factory):
    lesion = due(submission_factory(lesion_name="Freckle on my arm").lesion)
    later = submission_factory().lesion
    Lesion.objects.filter(pk=later.pk).update(remind_at=timezone.now() + timedelta(days=10))
    for url in (reverse("diagnosis:home"), reverse("diagnosis:lesion-list"), reverse("profile")):
        banner = _banner(owner_client.get(url).content.decode())
        assert banner, url
        assert reverse("diagnosis:lesion-detail", args=[lesion.uuid]) in banner
        assert "Freckle on my arm" in banner
        assert reverse("diagnosis:lesion-detail", args=[later.uuid]) not in banner


def _banner(html):
    match = re.search(r'<div class="notice" id="reminder-banner".*?</div>', html, re.S)
    return match.group(0) if match else ""


def test_banner_stays_after_the_email_until_a_new_photo(owner_client, submission_factory,
                                                        django_capture_on_commit_callbacks):
    lesion = due(submission_factory().lesion)
    reminders.send_due_reminders()
    assert 'id="reminder-banner"' in owner_client.get(reverse("diagnosis:home")).content.decode()
    finish_committed(django_capture_on_commit_callbacks, submission_factory(lesion=lesion), {"nv": 0.9})
    assert 'id="reminder-banner"' not in owner_client.get(reverse("diagnosis:home")).content.decode()


def test_no_banner_for_others_or_anonymous(client, outsider_client, submission_factory):
    lesion = due(submission_factory().lesion)
    for caller in (client, outsider_client):
        html = caller.get(reverse("diagnosis:home")).content.decode()
        assert 'id="reminder-banner"' not in html and str(lesion.uuid) not in html
