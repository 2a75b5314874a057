"""The client's address, as far as we can trust it: the one source for django-axes' lock-outs, every
DRF throttle (skinsite/throttling.py), the account limits, the metrics allow-list and the audit log.

Behind TRUSTED_PROXY_COUNT proxies, each appends the address it received the request from to
X-Forwarded-For, so the entry written by the proxy nearest to Django is the last one, and the
client's own is ``count`` entries from the right. Entries further left were written by the client
and could be anything, so they are never used. (deploy/nginx.conf sets X-Forwarded-For to
$remote_addr: one entry, one proxy.)

The header is believed only when the peer that sent the request (REMOTE_ADDR) is one of
TRUSTED_PROXY_IPS. Anyone who reaches gunicorn without going through the proxy can write any
X-Forwarded-For (issue 13, M3: a new one on every try gave 12 wrong passwords without a lock-out);
for them the address is the peer's own. Without proxies, always REMOTE_ADDR.
"""

import ipaddress

from django.conf import settings


def _is_trusted_proxy(peer: str | None) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    return any(address in network for network in settings.TRUSTED_PROXY_NETWORKS)


def client_ip(request):
    request = getattr(request, "_request", request)  # a DRF Request wraps the HttpRequest
    peer = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count and _is_trusted_proxy(peer):
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= count:
            return hops[-count]
    return peer
