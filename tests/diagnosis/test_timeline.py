"""Lesion timeline: the change rules (table-driven), the timeline read, the chart, the comparison page and API."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from diagnosis import analysis, timeline
from diagnosis.models import Submission
from tests.diagnosis.lesion_helpers import finish, photo_series

# --- the change rules, without a database ---------------------------------------------------------

BENIGN = {"nv": 0.80, "bkl": 0.10, "mel": 0.05}  # malignancy sum 0.05 + the tiny rest
E0 = np.array([1.0, 0.0, 0.0, 0.0])
E_NEAR = np.array([1.0, 0.2, 0.0, 0.0])  # cosine distance ≈ 0.019
E_FAR = np.array([0.2, 1.0, 0.0, 0.0])  # cosine distance ≈ 0.80


def point(probabilities, embedding=None, model_version="m1", days=0):
    return timeline.Point(submission=None, taken_at=timezone.now() + timedelta(days=days),
                          model_version=model_version, probabilities=dict(probabilities),
                          embedding=None if embedding is None else np.asarray(embedding, dtype=np.float64))


CASES = [
    # (id, previous, current, rules expected)
    ("identical", point(BENIGN, E0), point(BENIGN, E0), []),
    ("top class changes", point(BENIGN), point({"bkl": 0.7, "nv": 0.2}), ["top_class"]),
    ("malignancy rises by exactly the margin", point({"nv": 0.9, "mel": 0.05}), point({"nv": 0.8, "mel": 0.15}), []),
    ("malignancy rises beyond the margin", point({"nv": 0.9, "mel": 0.05}), point({"nv": 0.7, "mel": 0.16}),
     ["malignancy"]),
    ("malignancy summed over the four classes", point({"nv": 0.9, "bcc": 0.02}),
     point({"nv": 0.6, "bcc": 0.05, "scc": 0.05, "akiec": 0.04, "mel": 0.04}), ["malignancy"]),
    ("malignancy falls: no flag", point({"nv": 0.5, "mel": 0.45}), point({"nv": 0.9, "mel": 0.05}), []),
    ("melanoma on top and risen", point({"nv": 0.8, "mel": 0.1}), point({"mel": 0.6, "nv": 0.3}),
     ["top_class", "malignancy"]),
    ("embedding moves a little", point(BENIGN, E0), point(BENIGN, E_NEAR), []),
    ("embedding moves far", point(BENIGN, E0), point(BENIGN, E_FAR), ["appearance"]),
    ("no embedding on the earlier photo", point(BENIGN), point(BENIGN, E_FAR), []),
    ("embeddings of two model versions are not compared", point(BENIGN, E0, "m1"), point(BENIGN, E_FAR, "m2"), []),
    ("embeddings of different sizes are not compared", point(BENIGN, E0), point(BENIGN, [0.0, 1.0]), []),
    ("all three", point(BENIGN, E0), point({"mel": 0.7, "nv": 0.2}, E_FAR), ["top_class", "malignancy", "appearance"]),
    ("no probabilities (not analysed)", point({}), point(BENIGN), []),
]


@pytest.mark.parametrize("previous,current,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_change_rules(previous, current, expected):
    found = timeline.changes(previous, current, margin=0.10, threshold=0.48)
    assert [c.rule for c in found] == expected
    assert all(c.message for c in found)


def test_rules_read_their_settings(settings):
    before, after = point({"nv": 0.9, "mel": 0.05}, E0), point({"nv": 0.7, "mel": 0.25}, E_FAR)
    settings.LESION_CHANGE_MALIGNANCY_MARGIN = 0.10
    settings.LESION_CHANGE_EMBEDDING_THRESHOLD = 0.48
    assert [c.rule for c in timeline.changes(before, after)] == ["malignancy", "appearance"]
    settings.LESION_CHANGE_MALIGNANCY_MARGIN = 0.30
    settings.LESION_CHANGE_EMBEDDING_THRESHOLD = 0.90
    assert timeline.changes(before, after) == []


def test_messages_name_the_conditions_and_percentages():
    found = timeline.changes(point({"nv": 0.8, "mel": 0.1}), point({"mel": 0.6, "nv": 0.3}), margin=0.1, threshold=0.5)
    assert "Melanocytic nevus (mole)" in found[0].message and "Melanoma" in found[0].message
    assert "10 %" in found[1].message and "60 %" in found[1].message


def test_embedding_round_trip_and_cosine_distance():
    vector = np.array([0.5, -1.25, 3.0], dtype=np.float16)
    decoded = timeline.decode_embedding(memoryview(vector.tobytes()))  # PostgreSQL hands back a memoryview
    assert np.allclose(decoded, [0.5, -1.25, 3.0])
    assert timeline.decode_embedding(None) is None and timeline.decode_embedding(b"") is None
    assert timeline.cosine_distance(decoded, decoded) == pytest.approx(0.0, abs=1e-9)
    assert timeline.cosine_distance(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0)
    assert timeline.cosine_distance(np.zeros(2), np.ones(2)) is None


def test_default_threshold_is_the_measured_one():
    # bench/embedding_drift.py: 95th percentile of same-lesion distances, 0.476, rounded up.
    assert timeline.DEFAULT_EMBEDDING_THRESHOLD == 0.53
    assert timeline.DEFAULT_MALIGNANCY_MARGIN == 0.10


# --- reads from the database ---------------------------------------------------------------------


@pytest.fixture
def three_photos(submission_factory):
    """A mole photographed three times: steady, then melanoma-like and looking different."""
    return photo_series(submission_factory, [
        (60, {"nv": 0.85, "bkl": 0.08, "mel": 0.03}, E0),
        (30, {"nv": 0.82, "bkl": 0.10, "mel": 0.04}, E_NEAR),
        (1, {"mel": 0.55, "nv": 0.35, "bkl": 0.05}, E_FAR),
    ])


@pytest.mark.django_db
def test_timeline_lists_done_photos_oldest_first_with_changes(three_photos, submission_factory):
    lesion = three_photos[0].lesion
    pending = submission_factory(lesion=lesion)  # queued: not on the timeline
    points = timeline.lesion_timeline(lesion)
    assert [p.submission.pk for p in points] == [s.pk for s in three_photos]
    assert pending.pk not in [p.submission.pk for p in points]
    assert [p.changed for p in points] == [False, False, True]
    assert [c.rule for c in points[2].changes] == ["top_class", "malignancy", "appearance"]
    assert points[2].top_code == "mel" and points[2].malignancy > 0.55


@pytest.mark.django_db
def test_latest_changes_per_lesion(three_photos, submission_factory):
    steady = photo_series(submission_factory, [(5, BENIGN, None), (1, BENIGN, None)])[0].lesion
    single = photo_series(submission_factory, [(1, BENIGN, None)])[0].lesion
    found = timeline.latest_changes([three_photos[0].lesion, steady, single])
    assert [c.rule for c in found[three_photos[0].lesion.pk]] == ["top_class", "malignancy", "appearance"]
    assert found[steady.pk] == [] and found[single.pk] == []


@pytest.mark.django_db
def test_pick_pair_defaults_to_first_and_latest(three_photos):
    points = timeline.lesion_timeline(three_photos[0].lesion)
    a, b = timeline.pick_pair(points)
    assert (a.submission, b.submission) == (three_photos[0], three_photos[2])
    a, b = timeline.pick_pair(points, str(three_photos[1].uuid), str(three_photos[0].uuid))
    assert (a.submission, b.submission) == (three_photos[1], three_photos[0])
    a, b = timeline.pick_pair(points, "not-a-uuid", "")  # unknown ids fall back to the defaults
    assert (a.submission, b.submission) == (three_photos[0], three_photos[2])
    assert timeline.pick_pair([]) == (None, None)


@pytest.mark.django_db
def test_chart_has_a_series_per_top3_class_and_the_malignancy_sum(three_photos):
    points = timeline.lesion_timeline(three_photos[0].lesion)
    chart = timeline.probability_chart(points)
    codes = [s["code"] for s in chart["series"]]
    assert set(codes) == {"nv", "bkl", "mel", timeline.MALIGNANCY_SERIES}
    assert all(len(s["markers"]) == 3 for s in chart["series"])
    xs = [m["x"] for m in chart["series"][0]["markers"]]
    assert xs == sorted(xs) and xs[0] < xs[1] < xs[2]
    mel = next(s for s in chart["series"] if s["code"] == "mel")
    assert mel["markers"][2]["y"] < mel["markers"][0]["y"]  # higher probability is drawn higher
    assert timeline.probability_chart([])["count"] == 0


# --- the comparison page -------------------------------------------------------------------------


def _compare_url(lesion, **params):
    url = reverse("diagnosis:lesion-compare", args=[lesion.uuid])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.mark.django_db
def test_compare_page_shows_both_photos_and_a_point_per_photo(owner_client, submission_factory):
    first, second = photo_series(submission_factory, [(30, {"nv": 0.8, "mel": 0.05}, E0),
                                                      (1, {"mel": 0.6, "nv": 0.3}, E_FAR)])
    response = owner_client.get(_compare_url(first.lesion))
    assert response.status_code == 200
    html = response.content.decode()
    for element_id in ("compare-a", "compare-b", "probability-chart", "select-a", "select-b", "changed-flag"):
        assert f'id="{element_id}"' in html, element_id
    assert reverse("diagnosis:submission-photo", args=[first.uuid]) in html
    assert reverse("diagnosis:submission-photo", args=[second.uuid]) in html
    assert 'data-points="2"' in html
    assert len(re.findall(r'<circle class="point" data-series="malignancy"', html)) == 2
    assert len(re.findall(r'<circle class="point"', html)) == 2 * len(response.context["chart"]["series"])
    assert 'data-rule="top_class"' in html and 'data-rule="appearance"' in html
    assert "Changed" in html


@pytest.mark.django_db
def test_compare_page_picks_the_requested_photos(owner_client, submission_factory):
    photos = photo_series(submission_factory, [(30, BENIGN, None), (20, BENIGN, None), (10, BENIGN, None)])
    response = owner_client.get(_compare_url(photos[0].lesion, a=photos[1].uuid, b=photos[2].uuid))
    assert response.context["a"]["submission"] == photos[1]
    assert response.context["b"]["submission"] == photos[2]
    assert response.context["pair_changes"] == []
    assert "No change detected" in response.content.decode()


@pytest.mark.django_db
def test_compare_page_with_one_or_no_analysed_photo(owner_client, submission_factory):
    queued = submission_factory()
    response = owner_client.get(_compare_url(queued.lesion))
    assert response.status_code == 200 and 'id="compare-need-two"' in response.content.decode()
    assert 'id="probability-chart"' not in response.content.decode()
    finish(queued, BENIGN)
    html = owner_client.get(_compare_url(queued.lesion)).content.decode()
    assert 'data-points="1"' in html and 'id="compare-a"' in html


@pytest.mark.django_db
def test_compare_page_ignores_another_users_photo_ids(owner_client, submission_factory, other_user):
    mine = photo_series(submission_factory, [(3, BENIGN, None), (1, BENIGN, None)])
    theirs = finish(submission_factory(owner=other_user), {"mel": 0.9})
    response = owner_client.get(_compare_url(mine[0].lesion, a=theirs.uuid))
    assert response.status_code == 200
    assert response.context["a"]["submission"] == mine[0]  # not found in this lesion: the default
    assert str(theirs.uuid) not in response.content.decode()


@pytest.mark.django_db
def test_compare_page_is_private(client, outsider_client, submission_factory):
    lesion = submission_factory().lesion
    response = client.get(_compare_url(lesion))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert outsider_client.get(_compare_url(lesion)).status_code == 404


@pytest.mark.django_db
def test_detail_and_list_show_the_changed_badge_and_links(owner_client, three_photos, submission_factory):
    lesion = three_photos[0].lesion
    steady = photo_series(submission_factory, [(5, BENIGN, None), (1, BENIGN, None)])[0].lesion
    html = owner_client.get(reverse("diagnosis:lesion-detail", args=[lesion.uuid])).content.decode()
    assert 'id="lesion-changed"' in html and 'id="lesion-change-reasons"' in html
    assert _compare_url(lesion) in html
    assert reverse("diagnosis:lesion-report-pdf", args=[lesion.uuid]) in html
    html = owner_client.get(reverse("diagnosis:lesion-detail", args=[steady.uuid])).content.decode()
    assert 'id="lesion-changed"' not in html
    html = owner_client.get(reverse("diagnosis:lesion-list")).content.decode()
    assert f'data-lesion="{lesion.uuid}"' in html and f'data-lesion="{steady.uuid}"' not in html


@pytest.mark.django_db
def test_a_real_analysis_lands_on_the_timeline(owner_client, submission_factory, use_tiny_model):

    first = submission_factory()
    second = submission_factory(lesion=first.lesion)
    for s in (first, second):
        assert analysis.analyse_submission(s.pk) == Submission.Status.DONE
    points = timeline.lesion_timeline(first.lesion)
    assert len(points) == 2 and all(abs(sum(p.probabilities.values()) - 1) < 1e-3 for p in points)
    html = owner_client.get(_compare_url(first.lesion)).content.decode()
    assert 'data-points="2"' in html


# --- API ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_timeline(owner_client, three_photos):
    lesion = three_photos[0].lesion
    response = owner_client.get(reverse("api:lesion-timeline", args=[lesion.uuid]))
    assert response.status_code == 200
    data = response.json()
    assert data["lesion"] == str(lesion.uuid)
    assert data["malignancy_margin"] == 0.10 and data["embedding_threshold"] == 0.53
    assert [p["submission"] for p in data["points"]] == [str(s.uuid) for s in three_photos]
    assert [p["changed"] for p in data["points"]] == [False, False, True]
    assert [c["rule"] for c in data["points"][2]["changes"]] == ["top_class", "malignancy", "appearance"]
    assert data["points"][2]["top_code"] == "mel"
    assert data["points"][0]["probabilities"]["nv"] == pytest.approx(0.85)
    assert data["points"][2]["malignancy_probability"] > 0.55


@pytest.mark.django_db
def test_api_timeline_is_private(client, outsider_client, submission_factory):
    lesion = submission_factory().lesion
    url = reverse("api:lesion-timeline", args=[lesion.uuid])
    assert client.get(url).status_code == 401
    assert outsider_client.get(url).status_code == 404


@pytest.mark.django_db
def test_compare_page_offers_the_heatmap_toggle_when_there_is_one(owner_client, submission_factory):
    import io

    from django.core.files.base import ContentFile
    from PIL import Image

    first, second = photo_series(submission_factory, [(3, BENIGN, None), (1, BENIGN, None)])
    assert 'id="heatmap-toggle"' not in owner_client.get(_compare_url(first.lesion)).content.decode()
    png = io.BytesIO()
    Image.new("RGBA", (64, 48), (255, 0, 0, 128)).save(png, format="PNG")
    second.heatmap.save("overlay.png", ContentFile(png.getvalue()))
    html = owner_client.get(_compare_url(first.lesion)).content.decode()
    assert 'id="heatmap-toggle"' in html and 'id="heatmap-b"' in html and 'id="heatmap-a"' not in html
    heatmap_url = reverse("diagnosis:submission-heatmap", args=[second.uuid])
    assert heatmap_url in html
    assert owner_client.get(heatmap_url).status_code == 200
