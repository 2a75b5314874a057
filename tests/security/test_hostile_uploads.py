"""Hostile and unusual files through the sanitiser, the web form and the API.

Each is either accepted as a clean RGB JPEG (no trace of any payload in what is
stored) or rejected with a message meant for the person; never a 500, never a
file left in storage or in the temporary upload folder. Size limits at the
three layers (nginx, the request middleware, the form/serializer) are checked
at the end.
"""

import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from PIL import Image

from diagnosis.images import ImageRejected, sanitize_upload
from diagnosis.models import Lesion, Submission
from tests.conftest import image_bytes, upload_file
from tests.security.hostile import CASES, SCRIPT

IDS = list(CASES)
PAYLOAD_MARKERS = (SCRIPT, b"<html", b"PK\x03\x04", b"evil.html", b"xmpmeta")


@pytest.fixture(autouse=True)
def _upload_temp_dir(settings, tmp_path):
    # Every upload goes through a temporary file here, so stray files would be seen.
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0


def files_under(*roots):
    return [p for root in roots if Path(root).exists() for p in Path(root).rglob("*") if p.is_file()]


def assert_clean_jpeg(data: bytes):
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.mode == "RGB"
    assert not set(img.info) - {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive",
                                "progression"}, img.info
    for marker in PAYLOAD_MARKERS:
        assert marker not in data, marker


@pytest.mark.parametrize("case", IDS)
def test_sanitiser(case):
    build, rejected = CASES[case]
    limits = {"max_bytes": settings.MAX_UPLOAD_BYTES, "max_pixels": settings.MAX_IMAGE_PIXELS,
              "max_decode_bytes": settings.MAX_DECODE_MB * 2**20, "max_side": settings.STORED_IMAGE_MAX_SIDE}
    if rejected:
        with pytest.raises(ImageRejected, match=rejected):
            sanitize_upload(upload_file(build()), **limits)
    else:
        assert_clean_jpeg(sanitize_upload(upload_file(build()), **limits).content)


@pytest.mark.django_db
@pytest.mark.parametrize("case", IDS)
def test_web_form(case, owner_client):
    build, rejected = CASES[case]
    response = owner_client.post(reverse("diagnosis:upload"), {"image": upload_file(build(), "spot.png")})
    if rejected:
        assert response.status_code == 200
        assert rejected in response.content.decode().replace("&#x27;", "'")
        assert not Submission.objects.exists() and not Lesion.objects.exists()
        assert files_under(settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR) == []
    else:
        assert response.status_code == 302
        submission = Submission.objects.get()
        with submission.image.open("rb") as fh:
            assert_clean_jpeg(fh.read())
        assert len(files_under(settings.MEDIA_ROOT)) == 1
        assert files_under(settings.FILE_UPLOAD_TEMP_DIR) == []


@pytest.mark.django_db
@pytest.mark.parametrize("case", IDS)
def test_api(case, owner_client):
    build, rejected = CASES[case]
    response = owner_client.post(reverse("api:submission-list"), {"image": upload_file(build(), "spot.png")})
    if rejected:
        assert response.status_code == 400
        assert rejected in response.json()["image"][0]
        assert not Submission.objects.exists()
        assert files_under(settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR) == []
    else:
        assert response.status_code == 201
        with Submission.objects.get().image.open("rb") as fh:
            assert_clean_jpeg(fh.read())
        assert files_under(settings.FILE_UPLOAD_TEMP_DIR) == []


# --- size limits at three layers ------------------------------------------------------------------


def _nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def test_nginx_body_limit_matches_the_django_limit():
    conf = (Path(settings.BASE_DIR) / "deploy" / "nginx.conf").read_text()
    limits = re.findall(r"^\s*client_max_body_size\s+(\S+);", conf, re.MULTILINE)
    assert limits, "deploy/nginx.conf sets no client_max_body_size"
    assert {_nginx_size(v) for v in limits} == {settings.MAX_REQUEST_BYTES}
    assert settings.MAX_UPLOAD_BYTES < settings.MAX_REQUEST_BYTES <= settings.MAX_UPLOAD_BYTES + 2 * 1024**2
    # No location serves the media folder directly.
    assert not re.search(r"^\s*location\s+[^{]*media", conf, re.MULTILINE)
    assert str(settings.MEDIA_ROOT) not in conf and "/media" not in conf


def test_django_upload_settings_are_bounded():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 5 * 1024**2
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 5 * 1024**2
    # Django's default; the bulk upload (POST /api/v1/batches/) takes up to BULK_MAX_FILES photos.
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES <= 100


@pytest.mark.django_db
@pytest.mark.parametrize("url_name,json", [("diagnosis:upload", False), ("api:submission-list", True)])
def test_oversized_request_is_refused_before_reading(settings, owner_client, url_name, json):
    settings.MAX_REQUEST_BYTES = 50_000
    response = owner_client.post(reverse(url_name), {"image": upload_file(image_bytes("PNG", size=(400, 400)))})
    assert response.status_code == 413
    assert "too large" in (response.json()["detail"] if json else response.content.decode())
    assert not Submission.objects.exists()
    assert files_under(settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR) == []


@pytest.mark.django_db
@pytest.mark.parametrize("url_name,json", [("diagnosis:upload", False), ("api:submission-list", True)])
def test_file_over_the_upload_limit_is_rejected_by_the_form(settings, owner_client, url_name, json):
    settings.MAX_UPLOAD_BYTES = 10_000
    response = owner_client.post(reverse(url_name), {"image": upload_file(image_bytes("PNG", size=(400, 400)))})
    text = response.json()["image"][0] if json else response.content.decode()
    assert response.status_code == (400 if json else 200) and "too large" in text
    assert not Submission.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url_name,json", [("diagnosis:upload", False), ("api:submission-list", True)])
def test_an_upload_that_finds_no_decode_room_is_refused_and_stores_nothing(settings, owner_client, url_name, json):
    """Issue 13, M1: the web process decodes a bounded amount at once; an upload that cannot get
    room in time is told to try again, and leaves no record and no file."""
    from diagnosis.images import budget_of

    settings.DECODE_BUDGET_MB, settings.DECODE_WAIT_SECONDS = 1, 0.05
    budget = budget_of(2**20)
    with budget.hold(2**20, wait_s=1):  # another upload is decoding
        response = owner_client.post(reverse(url_name), {"image": upload_file(image_bytes("JPEG", size=(400, 300)))})
    text = response.json()["image"][0] if json else response.content.decode()
    assert response.status_code == (400 if json else 200) and "busy" in text and "try again" in text
    assert not Submission.objects.exists()
    assert files_under(settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR) == []
    response = owner_client.post(reverse(url_name), {"image": upload_file(image_bytes("JPEG", size=(400, 300)))})
    assert response.status_code in (201, 302) and Submission.objects.count() == 1
