"""Shared fixtures: users, real image files in memory, a tiny real Keras model artifact.

Photos go to a temporary MEDIA_ROOT per test. Tasks run eagerly unless a test
asks for the real worker (``celery_worker`` fixture in tests/integration).
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from ml.classes import CLASS_LABELS

TINY_INPUT = 32


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """A cache key prefix of its own per test: throttle counts never leak between tests.

    With REDIS_URL set the cache is the shared Redis (as in production), which a test
    must never flush (the Celery broker may live in the same database).
    """
    import uuid

    settings.CACHES = {name: {**conf, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
                       for name, conf in settings.CACHES.items()}


@pytest.fixture(autouse=True)
def _closed_breakers():
    """Every test starts with the broker's and the cache's circuit breakers closed (skinsite/breaker.py)."""
    from diagnosis import publish
    from skinsite import cache

    publish.breaker.reset()
    cache.breaker.reset()
    yield
    publish.breaker.reset()
    cache.breaker.reset()


@pytest.fixture(autouse=True)
def _eager_tasks(settings):
    """Run Celery tasks in-process by default; worker tests switch this off."""
    from skinsite.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def build_tiny_artifact(directory, *, version="tiny-test-1", min_confidence=0.0, seed=0):
    """A real (tiny, untrained) Keras model saved as a complete artifact directory."""
    import keras

    from ml.artifact import write_artifact

    keras.utils.set_random_seed(seed)
    codes = list(CLASS_LABELS)
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3), name="image")
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    embedding = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    logits = keras.layers.Dense(len(codes), name="logits")(embedding)
    model = keras.Model(inputs, [logits, embedding])
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model.keras")
    return write_artifact(directory, {
        "name": "tiny test model",
        "version": version,
        "architecture": "tiny-cnn",
        "classes": [{"code": c, "label": CLASS_LABELS[c]} for c in codes],
        "input_size": [TINY_INPUT, TINY_INPUT],
        "preprocessing": "unit",
        "temperature": 1.0,
        "thresholds": {"min_confidence": min_confidence},
        "gate": None,
    })


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model") / "tiny-test-1"
    build_tiny_artifact(directory)
    return directory


@pytest.fixture
def knowledge_base(transactional_db):
    """The condition entries the data migrations load. A transactional test's flush empties every
    table, migration data included, so tests that need the entries after such a test ask for this."""
    import importlib

    from django.apps import apps

    for name in ("0002_load_conditions", "0004_load_synonyms"):  # both leave existing rows alone
        importlib.import_module(f"guidance.migrations.{name}").load(apps, None)


@pytest.fixture
def use_tiny_model(settings, tiny_model_dir):
    """Point the app at the tiny model and forget any model loaded before."""
    from diagnosis.classifier import reset_classifier

    settings.ML_MODEL_DIR = tiny_model_dir
    reset_classifier()
    yield tiny_model_dir
    reset_classifier()


def image_bytes(fmt="JPEG", size=(64, 48), color=(200, 150, 120), mode="RGB", **save_kwargs) -> bytes:
    """A real image file in memory, with a little texture so encoders do real work."""
    rng = np.random.default_rng(0)
    arr = np.clip(np.array(color, dtype=np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


@pytest.fixture
def make_image():
    return image_bytes


def upload_file(content: bytes, name="spot.jpg", content_type="image/jpeg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


@pytest.fixture
def make_upload():
    return upload_file


@pytest.fixture
def password():
    return "a-long-Passphrase-42"


def consenting(user):
    """Record that ``user`` accepted the consent version in force (what the consent page does)."""
    from django.conf import settings

    from accounts.models import Consent

    Consent.objects.create(user=user, version=settings.CONSENT_VERSION)
    return user


@pytest.fixture
def user(django_user_model, password):
    """The owner, who has accepted the current consent (uploads need it)."""
    return consenting(django_user_model.objects.create_user("owner", "owner@example.com", password))


@pytest.fixture
def other_user(django_user_model, password):
    return consenting(django_user_model.objects.create_user("outsider", "outsider@example.com", password))


@pytest.fixture
def new_user(django_user_model, password):
    """A user who has not accepted any consent yet."""
    return django_user_model.objects.create_user("newcomer", "newcomer@example.com", password)


def _logged_in_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(user):
    return _logged_in_client(user)


@pytest.fixture
def outsider_client(other_user):
    return _logged_in_client(other_user)


@pytest.fixture
def submission_factory(user, tiny_model_dir):
    """Create real submissions (sanitised photo on disk) for a user, without running analysis."""
    from diagnosis import services

    def make(owner=None, lesion=None, **context):
        clean = services.clean_upload(upload_file(image_bytes()))
        from django.db import transaction

        with transaction.atomic():
            return services.create_submission(owner or user, clean, lesion=lesion, **context)

    return make


# --- Browser tests (tests/e2e, the assistant without JavaScript) ---

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def chromium():
    """The browser's path; skip without it (before anything heavy is set up), but fail on CI."""
    if not os.access(CHROMIUM, os.X_OK):
        message = (f"Debian's chromium is not installed at {CHROMIUM} "
                   "(bin/test installs it with apt-get when run as root)")
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    return CHROMIUM
