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
