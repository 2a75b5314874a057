"""Security events in the audit log (django-auditlog's LogEntry), next to the model changes.

Log-ins, failed log-ins, data exports and account deletions have no model
change of their own, so they are written with ``LogEntry.objects.log_create``
against the user they concern, with the event name in ``additional_data``.
Photo and lesion deletions are recorded by auditlog itself (DELETE entries);
admins opening a photo by the ``accessed`` signal (diagnosis/admin.py).

Never put image bytes, passwords, tokens or keys here: only names and ids.
A failed log-in for a username that does not exist is not written here (there is
no user to attach it to, and people type passwords into the username field);
django-axes records every failed attempt in its own table, without the password.
"""

import logging

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

logger = logging.getLogger("skinsite.security")

LOGIN = "login"
LOGIN_FAILED = "login_failed"
DATA_EXPORT = "data_export"
ACCOUNT_DELETED = "account_deleted"
CONSENT_ACCEPTED = "consent_accepted"
ADMIN_ACCESS = "admin_access"  # an admin looked at a health record (diagnosis/audit.py)

#: Every named event, as the audit log's admin lists them (filter and search by the name).
EVENTS = {
    LOGIN: "Log-in",
    LOGIN_FAILED: "Failed log-in",
    CONSENT_ACCEPTED: "Consent accepted",
    DATA_EXPORT: "Data export",
    ACCOUNT_DELETED: "Account deleted",
    ADMIN_ACCESS: "Admin looked at a record",
}

_THE_USER = object()  # default actor: the user the event is about


def _client_address(request):
    from skinsite.client_ip import client_ip

    return client_ip(request) if request is not None else None


def log_event(user, event, *, request=None, action=LogEntry.Action.ACCESS, actor=_THE_USER, **details):
    """One audit entry about ``user``; ``details`` must be small, non-secret JSON values."""
    logger.info("%s user=%s %s", event, user.pk, details or "")
    return LogEntry.objects.log_create(
        user,
        action=action,
        force_log=True,
        actor=user if actor is _THE_USER else actor,
        remote_addr=_client_address(request),
        additional_data={"event": event, **details},
    )


@receiver(user_logged_in, dispatch_uid="audit-login")
def _logged_in(sender, request, user, **kwargs):
    log_event(user, LOGIN, request=request)


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # ``credentials`` has the password already masked by Django; only the username is used.
    username = (credentials or {}).get(get_user_model().USERNAME_FIELD) or ""
    user = get_user_model().objects.filter(username__iexact=username).first() if username else None
    if user is None:
        logger.info("%s for an unknown username", LOGIN_FAILED)
        return
    log_event(user, LOGIN_FAILED, request=getattr(request, "_request", request), actor=None)
