"""Consent, API tokens and data rights: accept the consent text, issue and revoke tokens, export
everything, delete the account."""

from __future__ import annotations

import io
import json
import logging
import smtplib
import zipfile
from datetime import timedelta

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from . import audit, limits, selectors
from .models import Consent, username_taken

logger = logging.getLogger("skinsite.security")

SIGNUP_SALT = "accounts.signup"
SIGNUP_LINK_MAX_AGE = timedelta(days=3)


def current_consent(user) -> Consent | None:
    if not user.is_authenticated:
        return None
    return Consent.objects.current(user)


def has_current_consent(user) -> bool:
    return current_consent(user) is not None


def accept_consent(user, *, improve_model: bool, request=None) -> Consent:
    """Record that ``user`` accepted the consent version now in force (a new row each time)."""
    consent = Consent.objects.create(user=user, version=settings.CONSENT_VERSION, improve_model=bool(improve_model))
    audit.log_event(user, audit.CONSENT_ACCEPTED, request=request, version=consent.version,
                    improve_model=consent.improve_model)
    return consent


def request_signup(*, username: str, email: str, request) -> str:
    """Step 1 of sign-up: one e-mail to ``email``, whatever exists; the page answers the same always.

    - the address has an account: "someone tried to sign up with your address" (log in or reset);
    - the name is taken (or a look-alike of it, accounts/usernames.py): "choose another name";
    - otherwise a signed link, valid SIGNUP_LINK_MAX_AGE, to choose a password and create the account.
    Nothing is stored until then, so nobody can hold a name or an address they do not own. At most
    the ``account_mail`` rate of mails goes to one address (shared with password reset). Returns
    which mail was sent (for tests and the log), or "not_sent".
    """
    if not limits.mails_to(email).allow():
        logger.info("sign-up mail not sent: too many to one address")
        return "not_sent"
    existing = get_user_model().objects.filter(email__iexact=email).first()
    context = {"username": username, "site": settings.SITE_URL,
               "login_url": request.build_absolute_uri(reverse("login")),
               "reset_url": request.build_absolute_uri(reverse("password_reset")),
               "signup_url": request.build_absolute_uri(reverse("signup"))}
    if existing is not None:
        kind, subject = "existing", "Someone tried to sign up with your address"
        context["username"] = existing.get_username()
    elif username_taken(username):
        kind, subject = "username_taken", "That username is taken: choose another"
    else:
        kind, subject = "confirm", "Finish creating your account"
        token = signing.dumps({"username": username, "email": email}, salt=SIGNUP_SALT, compress=True)
        context["confirm_url"] = request.build_absolute_uri(f"{reverse('signup-confirm')}?token={token}")
        context["days"] = SIGNUP_LINK_MAX_AGE.days
    body = render_to_string(f"accounts/email/signup_{kind}.txt", context)
    # To the account's own address where there is one (the typed one may differ in case only).
    try:
        send_mail(f"Skin spot check: {subject}", body, None, [existing.email if existing else email])
    except (smtplib.SMTPException, OSError) as exc:
        # The page answers as always (it must not tell whether the address has an account); the
        # person can ask again, and the operator sees the failure here.
        logger.error("sign-up mail not sent (%s: %s): %s", exc.__class__.__name__, exc, kind)
        return kind
    logger.info("sign-up mail sent: %s", kind)
    return kind


def read_signup_token(token: str) -> dict | None:
    """The username and e-mail a sign-up link was made for, or None if it is forged or too old."""
    try:
        data = signing.loads(token or "", salt=SIGNUP_SALT, max_age=SIGNUP_LINK_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    return data if isinstance(data, dict) and {"username", "email"} <= data.keys() else None


def signup_still_possible(username: str, email: str) -> bool:
    return not (get_user_model().objects.filter(email__iexact=email).exists() or username_taken(username))


def create_account(*, username: str, email: str, password: str):
    """Step 2: the account, once the link proved the address is the person's; None if meanwhile taken."""
    if not signup_still_possible(username, email):
        return None
    try:
        with transaction.atomic():
            return get_user_model().objects.create_user(username=username, email=email, password=password)
    except IntegrityError:  # the same name or address created at the same moment
        return None


def issue_api_token(user) -> tuple[AuthToken, str]:
    """A new API token for ``user`` and its key, which is shown once: only a hash of it is stored.

    It expires after ``API_TOKEN_TTL``. A person keeps at most ``API_TOKENS_PER_USER`` (a script
    that logs in on every run would otherwise pile them up): the oldest beyond that are revoked.
    """
    with transaction.atomic():
        selectors.expired_api_tokens(user).delete()
        instance, key = AuthToken.objects.create(user=user, expiry=settings.API_TOKEN_TTL)
        keep = list(selectors.active_api_tokens(user).values_list("digest", flat=True)[:settings.API_TOKENS_PER_USER])
        AuthToken.objects.filter(user=user).exclude(digest__in=keep).delete()
    return instance, key


def revoke_api_token(user, digest: str) -> bool:
    """Revoke one of ``user``'s tokens; another person's token (or none) is left alone: False."""
    deleted, _ = AuthToken.objects.filter(user=user, digest=digest).delete()
    return bool(deleted)


def _iso(value):
    return value.isoformat() if value else None


def export_data(user) -> dict:
    """Everything we hold about ``user`` except the photos' bytes, as JSON-ready data."""
    from diagnosis.models import Lesion, Submission

    submissions = Submission.objects.for_owner(user).prefetch_related(
        "predictions", "assistant_conversation__messages").select_related("lesion")
    return {
        "exported_at": _iso(timezone.now()),
        "account": {"username": user.username, "email": user.email, "date_joined": _iso(user.date_joined),
                    "last_login": _iso(user.last_login)},
        # When each API token was issued and expires; never its key (only a hash of it is stored).
        "api_tokens": [
            {"created": _iso(t.created), "expiry": _iso(t.expiry)} for t in selectors.active_api_tokens(user)
        ],
        "consents": [
            {"version": c.version, "improve_model": c.improve_model, "accepted_at": _iso(c.accepted_at)}
            for c in user.consents.order_by("accepted_at")
        ],
        "lesions": [
            {"uuid": str(lesion.uuid), "name": lesion.name, "body_site": lesion.body_site,
             "created_at": _iso(lesion.created_at)}
            for lesion in Lesion.objects.for_owner(user).order_by("created_at")
        ],
        "submissions": [
            {
                "uuid": str(s.uuid), "lesion": str(s.lesion.uuid), "photo": f"photos/{s.uuid}.jpg",
                "heatmap": f"heatmaps/{s.uuid}.png" if s.heatmap else None,
                "created_at": _iso(s.created_at), "status": s.status, "failure_reason": s.failure_reason,
                "uncertain": s.uncertain, "model_version": s.model_version, "finished_at": _iso(s.finished_at),
                "image_sha256": s.image_sha256, "image_width": s.image_width, "image_height": s.image_height,
                "age": s.age, "sex": s.sex, "anatomic_site": s.anatomic_site, "skin_type": s.skin_type,
                "duration": s.duration, "symptoms": s.symptoms,
                "predictions": [
                    {"rank": p.rank, "code": p.code, "label": p.label, "probability": p.probability,
                     "model_version": p.model_version}
                    for p in sorted(s.predictions.all(), key=lambda p: p.rank)
                ],
                "assistant": _assistant_export(s),
            }
            for s in submissions.order_by("created_at")
        ],
    }


def _assistant_export(submission) -> dict | None:
    """The symptom assistant's conversation about one photo: its answers and every message."""
    from guidance.models import AssistantConversation

    try:
        conversation = submission.assistant_conversation
    except AssistantConversation.DoesNotExist:
        return None
    return {
        "answers": conversation.state.get("answers", {}),
        "messages": [
            {"role": m.role, "text": m.text, "tier": m.tier, "created_at": _iso(m.created_at)}
            for m in sorted(conversation.messages.all(), key=lambda m: (m.created_at, m.pk))
        ],
    }


def export_zip(user, *, request=None) -> bytes:
    """A zip of data.json, the decrypted photos (photos/<uuid>.jpg) and the explanation overlays
    (heatmaps/<uuid>.png) where there are any; the export is audited."""
    from diagnosis.models import Submission

    data = export_data(user)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(data, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False))
        for submission in Submission.objects.for_owner(user).only("uuid", "image", "heatmap"):
            # JPEGs and PNGs do not compress further: store them as they are.
            with submission.image.open("rb") as photo:
                archive.writestr(f"photos/{submission.uuid}.jpg", photo.read(), compress_type=zipfile.ZIP_STORED)
            if submission.heatmap:
                with submission.heatmap.open("rb") as overlay:
                    archive.writestr(f"heatmaps/{submission.uuid}.png", overlay.read(),
                                     compress_type=zipfile.ZIP_STORED)
    audit.log_event(user, audit.DATA_EXPORT, request=request, photos=len(data["submissions"]))
    return buffer.getvalue()


def delete_account(user, *, request=None) -> None:
    """Delete the user, their lesions, photos (files too), predictions, consents and API tokens
    (knox's tokens go with the user row: their foreign key cascades)."""
    from diagnosis import services as diagnosis_services
    from diagnosis.models import Lesion, Submission

    # The audit entries about the deleted photos and lesions are redacted (diagnosis.audit);
    # those about the account itself (log-ins, this deletion) keep the username as the trail.
    with transaction.atomic():
        # Written first, so the entry exists even though its object will not (actor becomes NULL).
        audit.log_event(user, audit.ACCOUNT_DELETED, request=request, action=audit.LogEntry.Action.DELETE)
        diagnosis_services.delete_submissions(Submission.objects.filter(owner=user))
        for lesion in Lesion.objects.filter(owner=user):
            diagnosis_services.delete_lesion(lesion)
        # django-axes keeps failed attempts by username and address; they go with the account.
        for model in (AccessAttempt, AccessFailureLog, AccessLog):
            model.objects.filter(username=user.get_username()).delete()
        user.delete()
