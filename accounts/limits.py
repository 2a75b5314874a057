"""Per-address and per-mailbox limits on log-in, password reset and sign-up (issue 13).

django-axes locks out a username *and* address pair, which does not slow one address trying a few
passwords on many usernames (password spraying), nor a script asking for reset or sign-up mails.
These limits are DRF's SimpleRateThrottle, the rate limiter the API already uses: the same shared
cache (Redis in production, so every web process counts together), the same rates table
(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], where settings and tests lower them) and its ``wait()``
for the Retry-After. The client address is ``skinsite.client_ip.client_ip``, as for axes.

- ``login_failures``: failed log-ins per address (web, admin and API token alike); counted by the
  ``user_login_failed`` receiver below, checked by ``accounts.backends.AddressLimitBackend``.
- ``password_reset`` and ``signup``: form posts per address (429 beyond).
- ``account_mail``: mails per target e-mail address (reset links and sign-up mails together). Past
  it nothing more is sent, and the page answers as usual: a 429 here would tell a stranger nothing
  about the account, but the mails already sent are enough.
"""

import hashlib
import math

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from rest_framework.throttling import SimpleRateThrottle

from skinsite.client_ip import client_ip


class AccountLimit(SimpleRateThrottle):
    """One counter (``scope`` + ``ident``), outside DRF's view machinery."""

    def __init__(self, scope, ident):
        self.scope, self.ident = scope, ident
        super().__init__()

    def get_cache_key(self, request=None, view=None):
        if not self.ident:  # no address known: nothing to count by
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def allow(self) -> bool:
        """Count this attempt; False when the limit was already reached (the attempt is not counted)."""
        return self.allow_request(None, None)

    def exceeded(self) -> bool:
        """Whether the limit is reached, without counting anything."""
        self.key, self.history = self.get_cache_key(), []
        if self.rate is None or self.key is None:
            return False
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record(self) -> None:
        """Count one attempt (a failed log-in), whether or not the limit is reached."""
        self.exceeded()  # loads the history that throttle_success() extends
        if self.rate is not None and self.key is not None:
            self.throttle_success()

    def retry_after(self) -> int:
        """Whole seconds until the next attempt is allowed (for the 429's Retry-After)."""
        if not self.history:
            return 1
        return max(1, math.ceil(self.duration - (self.now - self.history[-1])))


def _address(request):
    return client_ip(getattr(request, "_request", request))


def login_failures(request) -> AccountLimit:
    return AccountLimit("login_failures", _address(request))


def password_resets(request) -> AccountLimit:
    return AccountLimit("password_reset", _address(request))


def signups(request) -> AccountLimit:
    return AccountLimit("signup", _address(request))


def mails_to(email) -> AccountLimit:
    # Hashed: no e-mail addresses in cache keys (Redis is shared with the broker).
    ident = hashlib.sha256(email.strip().lower().encode()).hexdigest() if email else None
    return AccountLimit("account_mail", ident)


LIMITED = "login_limited_for"  # set on the HttpRequest the limit refused: seconds to wait


def limited_for(request) -> int | None:
    return getattr(getattr(request, "_request", request), LIMITED, None)


@receiver(user_login_failed, dispatch_uid="limit-login-failures")
def _count_failure(sender, credentials, request=None, **kwargs):
    # A try refused by the limit itself is not counted again, so the wait does not keep growing.
    if request is not None and not limited_for(request):
        login_failures(request).record()
