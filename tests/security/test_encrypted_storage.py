"""Photos are encrypted at rest, read back transparently, and keys can be rotated."""

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management import call_command
from django.urls import get_resolver, reverse

from diagnosis import analysis
from diagnosis.models import Submission
from diagnosis.storage import EncryptedFileSystemStorage, photo_storage

pytestmark = pytest.mark.django_db

JPEG_MAGIC = b"\xff\xd8\xff"


def raw_bytes(submission):
    return (Path(settings.MEDIA_ROOT) / submission.image.name).read_bytes()


def test_submission_field_uses_the_encrypted_storage(submission_factory):
    submission = submission_factory()
    assert isinstance(submission.image.storage, EncryptedFileSystemStorage)
    assert isinstance(photo_storage(), EncryptedFileSystemStorage)


def test_file_on_disk_is_ciphertext_and_open_gives_the_jpeg(submission_factory):
    submission = submission_factory()
    on_disk = raw_bytes(submission)
    assert not on_disk.startswith(JPEG_MAGIC) and b"JFIF" not in on_disk
    with submission.image.open("rb") as fh:
        assert fh.read().startswith(JPEG_MAGIC)
    # And the ciphertext is a Fernet token under the configured key.
    assert Fernet(settings.MEDIA_ENCRYPTION_KEYS[0]).decrypt(on_disk).startswith(JPEG_MAGIC)


def test_photo_views_serve_the_decrypted_jpeg(owner_client, submission_factory):
    submission = submission_factory()
    for url in (reverse("diagnosis:submission-photo", args=[submission.uuid]),
                reverse("api:submission-image", args=[submission.uuid])):
        response = owner_client.get(url)
        body = b"".join(response.streaming_content)
        assert response.status_code == 200 and body.startswith(JPEG_MAGIC)
        assert response["Content-Type"] == "image/jpeg"
        assert response["Cache-Control"] == "private, no-store"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert int(response["Content-Length"]) == len(body)


def test_worker_analyses_the_encrypted_photo(submission_factory, use_tiny_model):

    submission = submission_factory()
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    assert Submission.objects.get(pk=submission.pk).predictions.count() > 0


def test_a_wrong_key_fails_closed(settings, submission_factory):
    submission = submission_factory()
    settings.MEDIA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(InvalidToken):
        submission.image.open("rb")


def test_photos_have_no_public_url(submission_factory):
    with pytest.raises(ValueError):
        _ = submission_factory().image.url


def test_no_media_route_in_the_url_configuration(client, submission_factory):
    submission = submission_factory()
    assert client.get("/media/" + submission.image.name).status_code == 404
    patterns = [str(p.pattern) for p in get_resolver().url_patterns]
    assert not any("media" in p for p in patterns), patterns


@pytest.mark.parametrize("env", [{"DJANGO_DEBUG": "true"}, {"DJANGO_ENV": "production"}, {}])
def test_no_setting_adds_a_media_route(env):
    """Neither DEBUG nor production settings serve MEDIA_ROOT (no static() helper for media in urls.py)."""
    code = (
        "import django; django.setup();"
        "from django.urls import get_resolver;"
        "from django.conf import settings;"
        "ps=[str(p.pattern) for p in get_resolver().url_patterns];"
        "assert not any('media' in p for p in ps), ps;"
        "assert 'static' not in ' '.join(ps) or not settings.MEDIA_URL;"
        "print('ok')"
    )
    full_env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "skinsite.settings",
                "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "example.org",
                "MEDIA_ENCRYPTION_KEY": Fernet.generate_key().decode(), **env}
    result = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                            cwd=settings.BASE_DIR, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_rotate_media_key_re_encrypts_with_the_new_key(settings, submission_factory, capsys):
    old = settings.MEDIA_ENCRYPTION_KEYS[0]
    first, second = submission_factory(), submission_factory()
    new = Fernet.generate_key().decode()
    settings.MEDIA_ENCRYPTION_KEYS = [new, old]

    call_command("rotate_media_key", "--dry-run")
    assert "Would re-encrypt 2 file(s) under an old key" in capsys.readouterr().out
    with pytest.raises(InvalidToken):  # the dry run changed nothing
        Fernet(new).decrypt(raw_bytes(first))

    call_command("rotate_media_key")
    assert "Re-encrypted 2 file(s)" in capsys.readouterr().out
    for submission in (first, second):
        old_name = submission.image.name
        submission.refresh_from_db()
        assert submission.image.name != old_name
        assert not (Path(settings.MEDIA_ROOT) / old_name).exists()
        assert Fernet(new).decrypt(raw_bytes(submission)).startswith(JPEG_MAGIC)

    settings.MEDIA_ENCRYPTION_KEYS = [new]  # the old key can go now
    with first.image.open("rb") as fh:
        assert fh.read().startswith(JPEG_MAGIC)
    call_command("rotate_media_key")
    assert "2 already current" in capsys.readouterr().out


def test_rotate_media_key_encrypts_legacy_plain_files(submission_factory, capsys):
    submission = submission_factory()
    path = Path(settings.MEDIA_ROOT) / submission.image.name
    with submission.image.open("rb") as fh:
        path.write_bytes(fh.read())  # as stored before encryption existed
    call_command("rotate_media_key")
    assert "1 plain file(s)" in capsys.readouterr().out
    submission.refresh_from_db()
    assert not raw_bytes(submission).startswith(JPEG_MAGIC)
    with submission.image.open("rb") as fh:
        assert fh.read().startswith(JPEG_MAGIC)


def test_production_refuses_to_start_without_a_media_key():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "skinsite.settings", "DJANGO_ENV": "production",
           "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "example.org"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env,
                            capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=120)
    assert result.returncode != 0 and "MEDIA_ENCRYPTION_KEY" in result.stderr


def test_a_malformed_key_is_refused():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "skinsite.settings",
           "MEDIA_ENCRYPTION_KEY": "not-a-key"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env,
                            capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=120)
    assert result.returncode != 0 and "Fernet keys" in result.stderr
