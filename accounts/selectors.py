"""Reads scoped to one person: their API tokens."""

from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken


def active_api_tokens(user):
    """``user``'s tokens that still work, newest first (knox deletes an expired one when it is used)."""
    return AuthToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), user=user).order_by(
        "-created")


def expired_api_tokens(user):
    return AuthToken.objects.filter(user=user, expiry__lte=timezone.now())
