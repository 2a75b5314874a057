"""Deployment checks (``manage.py check --deploy``) for what Django's own checks cannot know."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.files.storage import storages

from .storage import EncryptedStorageMixin


@register(Tags.security, deploy=True)
def photos_are_encrypted(app_configs, **kwargs):
    if isinstance(storages["photos"], EncryptedStorageMixin):
        return []
    return [Error(
        "The photo storage does not encrypt: STORAGES['photos'] must use diagnosis.storage.EncryptedStorageMixin.",
        id="skinsite.E001",
    )]


@register(Tags.caches, deploy=True)
def throttles_share_one_cache(app_configs, **kwargs):
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [Warning(
            f"The cache is {backend.rsplit('.', 1)[-1]}: each process counts API requests on its own, so the "
            "throttles allow several times their rate. Set REDIS_URL (or CACHE_URL).",
            id="skinsite.W001",
        )]
    return []


@register(Tags.security, deploy=True)
def allowed_hosts_are_named(app_configs, **kwargs):
    """ALLOWED_HOSTS='*' passes Django's own deploy checks, but lets any Host header through (password
    reset links and absolute URLs are built from it): refuse it."""
    if "*" in settings.ALLOWED_HOSTS:
        return [Error(
            "ALLOWED_HOSTS contains '*': name the site's host names (a leading dot allows subdomains).",
            id="skinsite.E002",
        )]
    return []


@register(Tags.security, deploy=True)
def proxy_trust_is_bounded(app_configs, **kwargs):
    """TRUSTED_PROXY_COUNT makes X-Forwarded-For the client's address for lock-outs and throttles.
    That is only safe when a proxy really is in front (one that also says the scheme:
    SECURE_PROXY_SSL_HEADER) and only proxies' own addresses are believed (issue 13, M3)."""
    if not settings.TRUSTED_PROXY_COUNT:
        return []
    found = []
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is None:
        found.append(Warning(
            f"TRUSTED_PROXY_COUNT={settings.TRUSTED_PROXY_COUNT} but SECURE_PROXY_SSL_HEADER is unset, so no proxy "
            "header is expected: without a proxy in front, clients choose their own address for the log-in "
            "lock-out and the throttles. Set TRUSTED_PROXY_COUNT=0, or configure the proxy.",
            id="skinsite.W002",
        ))
    if any(network.prefixlen == 0 for network in settings.TRUSTED_PROXY_NETWORKS):
        found.append(Warning(
            "TRUSTED_PROXY_IPS trusts every address: anyone who reaches the application directly can write "
            "X-Forwarded-For. List only the proxies' addresses.",
            id="skinsite.W003",
        ))
    return found


@register(Tags.security, deploy=True)
def mail_is_sent(app_configs, **kwargs):
    """Sign-up is finished through an e-mailed link, and password resets are mailed: with the
    console or an in-memory backend nobody can sign up, and the links (which let whoever holds them
    choose the password) end up in the process's log."""
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2] if "." in settings.EMAIL_BACKEND else settings.EMAIL_BACKEND
    if backend in ("console", "locmem", "dummy", "filebased"):
        return [Warning(
            f"EMAIL_BACKEND is the {backend} backend: sign-up links and password resets are not sent (and may be "
            "written to the log). Set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST.",
            id="skinsite.W004",
        )]
    return []
