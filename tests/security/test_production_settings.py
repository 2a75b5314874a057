"""Production settings: fail fast without secrets, and `check --deploy` clean at WARNING level.

Each case runs Django in a subprocess with a clean environment (settings are read once per process).
"""

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k" * 20 + "production-secret-for-the-deploy-check-0123456789",
    "ALLOWED_HOSTS": "skin.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://skin.example.org",
    "MEDIA_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "EMAIL_HOST": "smtp.example.org",
}


def run(args, env):
    full_env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "skinsite.settings", **env}
    return subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True,
                          cwd=settings.BASE_DIR, timeout=180)


def test_check_deploy_is_clean_at_warning_level():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_a_shared_cache():
    env = {k: v for k, v in PRODUCTION.items() if k != "REDIS_URL"}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0 and "skinsite.W001" in result.stderr + result.stdout


def test_check_deploy_fails_with_an_unencrypted_photo_storage():
    env = {**PRODUCTION, "PHOTO_STORAGE_BACKEND": "django.core.files.storage.FileSystemStorage"}
    result = run(["manage.py", "check", "--deploy"], env)
    assert result.returncode != 0 and "skinsite.E001" in result.stderr + result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "MEDIA_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_security_settings():
    code = ("import django, json; django.setup(); from django.conf import settings as s;"
            "print(json.dumps({k: getattr(s, k) for k in ['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE',"
            "'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS',"
            "'SECURE_PROXY_SSL_HEADER', 'CSRF_TRUSTED_ORIGINS', 'X_FRAME_OPTIONS', 'SESSION_COOKIE_HTTPONLY']}))")
    result = run(["-c", code], PRODUCTION)
    assert result.returncode == 0, result.stderr
    import json

    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_SSL_REDIRECT"] and values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://skin.example.org"]
    assert values["X_FRAME_OPTIONS"] == "DENY"


def test_development_defaults_need_no_secrets():
    result = run(["manage.py", "check"], {})
    assert result.returncode == 0, result.stderr


def test_check_deploy_refuses_allowed_hosts_star():
    """Issue 13: `check --deploy` passed with ALLOWED_HOSTS='*'."""
    result = run(["manage.py", "check", "--deploy"], {**PRODUCTION, "ALLOWED_HOSTS": "skin.example.org,*"})
    assert result.returncode != 0 and "skinsite.E002" in result.stderr + result.stdout


def test_the_smtp_server_is_configured_from_the_environment():
    """Sign-up is finished through an e-mailed link: production must be able to name its mail server."""
    code = ("import django; django.setup(); from django.conf import settings as s;"
            "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_USE_TLS)")
    result = run(["-c", code], {**PRODUCTION, "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                                "EMAIL_HOST": "smtp.example.org", "EMAIL_PORT": "587", "EMAIL_HOST_USER": "skin",
                                "EMAIL_USE_TLS": "true"})
    assert result.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "smtp.example.org", "587", "skin",
                                     "True"], result.stderr[-2000:]


def test_check_deploy_warns_when_mail_is_not_sent():
    """Sign-up needs the e-mailed link (issue 13 review: the console backend was the production default)."""
    result = run(["manage.py", "check", "--deploy"], {**PRODUCTION, "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"})
    assert "skinsite.W004" in result.stderr + result.stdout
    assert "skinsite.W004" not in (run(["manage.py", "check", "--deploy"], PRODUCTION).stderr)
