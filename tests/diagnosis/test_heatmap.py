"""The "where the model looked" heatmap and the stored embedding: worker path, routes, deletion."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from diagnosis import analysis, services
from diagnosis.classifier import get_classifier
from diagnosis.models import Submission
from ml.preprocessing import open_image

pytestmark = pytest.mark.django_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def page_url(submission):
    return reverse("diagnosis:submission-heatmap", args=[submission.uuid])


def api_url(submission):
    return reverse("api:submission-heatmap", kwargs={"uuid": submission.uuid})


def decrypted(field_file) -> bytes:
    with field_file.open("rb") as fh:
        return fh.read()


def stored_path(settings, name) -> Path:
    return Path(settings.MEDIA_ROOT) / name


# --- the worker path ---------------------------------------------------------------------------


def test_analysis_stores_an_encrypted_png_heatmap_the_size_of_the_photo(analysed, settings):
    assert analysed.heatmap.name.startswith("heatmaps/") and analysed.heatmap.name.endswith(".png")
    raw = stored_path(settings, analysed.heatmap.name).read_bytes()
    assert not raw.startswith(PNG_MAGIC)  # encrypted at rest, like the photo
    png = decrypted(analysed.heatmap)
    assert png.startswith(PNG_MAGIC)
    overlay = Image.open(io.BytesIO(png))
    assert overlay.size == (analysed.image_width, analysed.image_height) == (64, 48)
    assert overlay.convert("RGBA").mode == "RGBA"


def test_analysis_stores_the_embedding_as_float16(analysed):
    from diagnosis.timeline import decode_embedding

    classifier = get_classifier()
    with analysed.image.open("rb") as fh:
        img = open_image(fh, classifier.input_size)
        expected = classifier.predict([img])[0].embedding
    blob = bytes(analysed.embedding)
    assert len(blob) == expected.size * 2  # float16: two bytes per dimension
    np.testing.assert_allclose(np.frombuffer(blob, np.float16), expected, rtol=1e-2, atol=1e-3)
    assert decode_embedding(analysed.embedding).shape == expected.shape  # what the lesion timeline reads


def test_heatmaps_can_be_turned_off(submission, use_tiny_model, settings):
    settings.ML_HEATMAPS = False
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    submission.refresh_from_db()
    assert not submission.heatmap
    assert submission.embedding  # the embedding is cheap and still stored
    assert not (Path(settings.MEDIA_ROOT) / "heatmaps").exists()


def test_a_failing_heatmap_does_not_fail_the_analysis(submission, use_tiny_model, monkeypatch, caplog):
    import ml.explain

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ml.explain, "occlusion_heatmap", broken)
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    submission.refresh_from_db()
    assert submission.status == Submission.Status.DONE and submission.predictions.count() == 12
    assert not submission.heatmap and submission.embedding
    assert "heatmap failed" in caplog.text


def test_a_photo_rejected_as_not_skin_gets_neither(submission, use_tiny_model, settings):
    class RejectEverything:
        def is_skin(self, embedding, batch):
            return np.zeros(len(batch), dtype=bool)

    get_classifier().gate = RejectEverything()
    assert analysis.analyse_submission(submission.pk) == Submission.Status.REJECTED
    submission.refresh_from_db()
    assert not submission.heatmap and submission.embedding is None
    assert not (Path(settings.MEDIA_ROOT) / "heatmaps").exists()


def test_a_rolled_back_store_leaves_no_heatmap_file(submission, use_tiny_model, settings, monkeypatch):
    classifier = get_classifier()
    with submission.image.open("rb") as fh:
        img = open_image(fh, classifier.input_size)
    result = classifier.predict([img])[0]
    png = analysis.explanations.heatmap_png(classifier, img, result, (64, 48))
    assert png.startswith(PNG_MAGIC)

    def collide(self, *args, **kwargs):
        raise IntegrityError("a concurrent run stored it first")

    monkeypatch.setattr(Submission, "save", collide)
    assert analysis.store_result(submission.pk, result, heatmap=png) == "skipped"
    heatmaps = Path(settings.MEDIA_ROOT) / "heatmaps"
    assert not heatmaps.exists() or not any(heatmaps.iterdir())


def test_deleting_the_submission_deletes_its_heatmap(analysed, settings, django_capture_on_commit_callbacks):
    heatmap_file = stored_path(settings, analysed.heatmap.name)
    photo_file = stored_path(settings, analysed.image.name)
    assert heatmap_file.exists() and photo_file.exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_submission(analysed)
    assert not heatmap_file.exists() and not photo_file.exists()


# --- the web route -----------------------------------------------------------------------------


def test_owner_gets_the_heatmap_privately(owner_client, analysed):
    response = owner_client.get(page_url(analysed))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content) == decrypted(analysed.heatmap)


def test_outsider_gets_404(outsider_client, analysed):
    assert outsider_client.get(page_url(analysed)).status_code == 404


def test_anonymous_is_sent_to_log_in(client, analysed):
    response = client.get(page_url(analysed))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_no_heatmap_is_404_for_the_owner(owner_client, submission):
    assert owner_client.get(page_url(submission)).status_code == 404


def test_the_result_is_stored_before_the_heatmap_is_computed(submission, use_tiny_model, monkeypatch):
    """The person sees the result without waiting for the ~50 extra forward passes of the overlay."""
    seen = []
    real = analysis.explanations.heatmap_png

    def heatmap_png(*args, **kwargs):
        row = Submission.objects.get(pk=submission.pk)
        seen.append((row.status, row.predictions.count(), bool(row.heatmap)))
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis.explanations, "heatmap_png", heatmap_png)
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    assert seen == [(Submission.Status.DONE, 12, False)]
    assert Submission.objects.get(pk=submission.pk).heatmap


def test_a_late_heatmap_never_overwrites_a_newer_state(analysed, settings):
    from diagnosis.explanations import store_heatmap

    first = analysed.heatmap.name
    assert store_heatmap(analysed.pk, PNG_MAGIC + b"late", analysed.model_version) is False  # it has one
    Submission.objects.filter(pk=analysed.pk).update(heatmap="")
    assert store_heatmap(analysed.pk, PNG_MAGIC + b"late", "another-model") is False  # re-analysed since
    assert store_heatmap(analysed.pk + 999, PNG_MAGIC, analysed.model_version) is False  # deleted
    assert store_heatmap(analysed.pk, PNG_MAGIC + b"late", analysed.model_version) is True
    assert Submission.objects.get(pk=analysed.pk).heatmap.name not in ("", first)


def test_result_page_waits_for_a_heatmap_still_being_computed(owner_client, analysed, settings):
    url = reverse("diagnosis:submission-status", args=[analysed.uuid])
    assert owner_client.get(url).json()["heatmap_pending"] is False  # it has its overlay
    Submission.objects.filter(pk=analysed.pk).update(heatmap="")
    assert owner_client.get(url).json()["heatmap_pending"] is True
    html = owner_client.get(reverse("diagnosis:submission-detail", args=[analysed.uuid])).content.decode()
    assert 'data-heatmap-pending="true"' in html and 'id="heatmap-pending"' in html
    settings.ML_HEATMAPS = False  # none is coming
    assert owner_client.get(url).json()["heatmap_pending"] is False
    settings.ML_HEATMAPS = True
    Submission.objects.filter(pk=analysed.pk).update(finished_at=timezone.now() - timedelta(minutes=5))
    assert owner_client.get(url).json()["heatmap_pending"] is False  # gave up: the worker died in between


def test_result_page_has_the_toggleable_overlay(owner_client, analysed):
    html = owner_client.get(reverse("diagnosis:submission-detail", args=[analysed.uuid])).content.decode()
    assert 'id="heatmap-toggle"' in html and 'type="checkbox"' in html
    assert 'id="heatmap-overlay"' in html and page_url(analysed) in html
    assert "Show where the model looked" in html
    # Hidden until ticked, with CSS alone (works without JavaScript).
    assert ".heatmap-toggle:checked ~ .photo-stack .heatmap" in html


def test_result_page_without_a_heatmap_has_no_toggle(owner_client, submission):
    html = owner_client.get(reverse("diagnosis:submission-detail", args=[submission.uuid])).content.decode()
    assert 'id="heatmap-toggle"' not in html and 'id="heatmap-overlay"' not in html


# --- the API -----------------------------------------------------------------------------------


@pytest.fixture
def api_owner(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api_outsider(other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    return client


def test_api_submission_has_heatmap_url(api_owner, analysed):
    body = api_owner.get(reverse("api:submission-detail", kwargs={"uuid": analysed.uuid})).json()
    assert body["heatmap_url"] == "http://testserver" + api_url(analysed)


def test_api_heatmap_url_is_null_without_one(api_owner, submission):
    body = api_owner.get(reverse("api:submission-detail", kwargs={"uuid": submission.uuid})).json()
    assert body["heatmap_url"] is None
    assert api_owner.get(api_url(submission)).status_code == 404


@pytest.mark.parametrize("accept", [None, "image/png"])
def test_api_owner_gets_the_heatmap(api_owner, analysed, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = api_owner.get(api_url(analysed), **headers)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == decrypted(analysed.heatmap)


def test_api_outsider_gets_404(api_outsider, analysed):
    assert api_outsider.get(api_url(analysed)).status_code == 404
    assert api_outsider.get(api_url(analysed), HTTP_ACCEPT="image/png").status_code == 404


def test_api_anonymous_gets_401(analysed):
    assert APIClient().get(api_url(analysed)).status_code == 401


# --- key rotation and orphan clean-up cover heatmaps too ----------------------------------------


def test_rotate_media_key_re_encrypts_heatmaps(analysed, settings, capsys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old_name, before = analysed.heatmap.name, decrypted(analysed.heatmap)
    new = Fernet.generate_key().decode()
    settings.MEDIA_ENCRYPTION_KEYS = [new, settings.MEDIA_ENCRYPTION_KEYS[0]]
    call_command("rotate_media_key")
    assert "Re-encrypted 2 file(s)" in capsys.readouterr().out  # the photo and its heatmap
    analysed.refresh_from_db()
    assert analysed.heatmap.name != old_name and not stored_path(settings, old_name).exists()
    settings.MEDIA_ENCRYPTION_KEYS = [new]  # the old key is gone: the heatmap still opens
    assert decrypted(analysed.heatmap) == before


def test_purge_orphans_removes_a_heatmap_without_a_row(analysed, settings, capsys):
    import os
    import time

    from django.core.management import call_command

    orphan = Path(settings.MEDIA_ROOT) / "heatmaps" / "orphan.png"
    orphan.write_bytes(b"left behind")
    two_hours_ago = time.time() - 7200
    for path in (orphan, stored_path(settings, analysed.heatmap.name), stored_path(settings, analysed.image.name)):
        os.utime(path, (two_hours_ago, two_hours_ago))
    call_command("purge_expired", "--orphans")
    assert "Deleted 1 orphan file(s)" in capsys.readouterr().out
    assert not orphan.exists() and stored_path(settings, analysed.heatmap.name).exists()
