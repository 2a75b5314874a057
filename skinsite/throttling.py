"""DRF's throttles, keyed on the one client address (skinsite/client_ip.py).

DRF's own ``get_ident`` uses the raw X-Forwarded-For when NUM_PROXIES is unset, so a client that
writes a new header on every request gets a new bucket every time (issue 13, L1: 70 requests over
the anonymous limit in one minute). Every throttle of the project derives from these.
"""

from rest_framework import throttling

from .client_ip import client_ip


class ClientAddressMixin:
    def get_ident(self, request):
        return client_ip(request) or "unknown"


class AnonRateThrottle(ClientAddressMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(ClientAddressMixin, throttling.UserRateThrottle):
    pass
