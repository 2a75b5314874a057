"""The one classifier per process that the worker uses.

Loaded lazily on first use (or eagerly in ``worker_process_init``) so that the
web process never loads a model, and each forked worker child builds its own
engine (LiteRT interpreter or TensorFlow) after the fork.
"""

from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def get_classifier():
    from ml.inference import Classifier

    return Classifier.load(settings.ML_MODEL_DIR, runtime=settings.ML_RUNTIME, threads=settings.ML_THREADS)


def reset_classifier():
    """Forget the loaded model (tests, or after the artifact was replaced)."""
    get_classifier.cache_clear()
