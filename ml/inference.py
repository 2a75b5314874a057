"""Load a model artifact once and turn decoded photos into ranked, calibrated classes.

This is the only ``ml`` API the web app uses. Callers keep one ``Classifier`` per
process, loaded after forking (the Celery worker does it in ``worker_process_init``:
neither TensorFlow nor a LiteRT interpreter is fork-safe once initialised). The
engine is the artifact's ``serving`` choice, a LiteRT export when one scores within
half a point of the Keras model; that path never imports TensorFlow (ml/runtime.py).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from .artifact import ArtifactError, read_metadata
from .classes import label_for
from .preprocessing import open_image, prepare_batch
from .runtime import load_runtime
from .tta import crop_of, views_of, with_flips

MODEL_FILE = "model.keras"

STATUS_OK = "ok"
STATUS_UNCERTAIN = "uncertain"
STATUS_REJECTED = "rejected"

REASON_LOW_CONFIDENCE = "low_confidence"
REASON_NOT_SKIN = "not_skin"
REASON_UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ClassProbability:
    code: str
    label: str
    probability: float


@dataclass(frozen=True)
class Result:
    status: str
    reason: str | None
    model_version: str
    predictions: list[ClassProbability] = field(default_factory=list)
    # The model's image embedding (1-D float array) when it has one; kept out of as_dict (and so
    # out of the CLI's JSON): it is for comparing photos of the same lesion, not for people.
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: "dermoscopic" or "clinical" as the artifact's kind probe reads the photo; None without a probe
    kind: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("embedding", None)
        return data


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """A loaded, checksum-verified model artifact and the engine that runs it."""

    def __init__(self, directory: Path, metadata: dict, model=None, gate=None, runtime=None, kind_probe=None):
        self.directory = directory
        self.metadata = metadata
        self._model = model
        self.gate = gate
        self.runtime = runtime
        self.kind_probe = kind_probe
        self.version: str = metadata["version"]
        self.input_size: tuple[int, int] = tuple(metadata["input_size"])[:2]
        self.preprocessing: str = metadata["preprocessing"]
        self.temperature: float = float(metadata.get("temperature") or 1.0)
        self.min_confidence: float = float((metadata.get("thresholds") or {}).get("min_confidence", 0.0))
        self.test_time_flips: int = views_of(metadata)
        self.test_time_crop: float | None = crop_of(metadata)
        self.classes: list[tuple[str, str]] = [
            (c["code"], c.get("label") or label_for(c["code"])) for c in metadata["classes"]
        ]

    @classmethod
    def load(cls, directory: str | Path, runtime: str | None = None, threads: int | None = None) -> "Classifier":
        """Verify checksums, then start the engine (and the gate, if the artifact has one).

        ``runtime``: ``auto`` (the artifact's ``serving`` choice), ``keras`` or ``litert``; default
        the ``ML_RUNTIME`` environment variable, else ``auto``. ``threads``: inference threads,
        default ``ML_THREADS`` or 1 (several single-threaded worker processes serve more photos
        per second than fewer multi-threaded ones; docs/PERFORMANCE.md).
        """
        directory = Path(directory)
        metadata = read_metadata(directory, verify=True)
        if runtime is None:
            runtime = os.environ.get("ML_RUNTIME") or "auto"
        engine = load_runtime(directory, metadata, runtime, threads)
        gate = None
        if metadata.get("gate"):
            from .gate import load_gate

            gate = load_gate(directory, metadata["gate"])
        probe = None
        if metadata.get("photo_kind"):
            from .photo_kind import load_kind_probe

            probe = load_kind_probe(directory, metadata["photo_kind"])
        return cls(directory, metadata, getattr(engine, "model", None), gate, engine, probe)

    @property
    def runtime_name(self) -> str:
        return getattr(self.runtime, "name", "keras")

    @property
    def engine_file(self) -> str:
        """The model file that computes the outputs (``model.keras``, ``model_int8.tflite``...):
        one version can be served by several, whose outputs differ slightly."""
        return Path(getattr(self.runtime, "path", self.metadata.get("model_file", "model.keras"))).name

    @property
    def engine_key(self) -> str:
        """What makes this classifier's outputs what they are: the engine file and the number of
        test-time views (a score cache must not mix them)."""
        stem = Path(self.engine_file).stem
        if self.test_time_flips != 1:
            stem = f"{stem}-flips{self.test_time_flips}"
        return stem if self.test_time_crop is None else f"{stem}-crop{self.test_time_crop:g}"

    @property
    def model(self):
        """The Keras model (Grad-CAM, evaluation). Under LiteRT it is loaded on first use, which
        imports TensorFlow into this process: serving itself never needs it."""
        if self._model is None:
            import keras  # deferred: importing TensorFlow costs seconds

            path = self.directory / self.metadata.get("model_file", MODEL_FILE)
            if not path.is_file():
                raise ArtifactError(f"model file {path.name} is missing from {self.directory}")
            self._model = keras.saving.load_model(path, compile=False)
        return self._model

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw ``(logits, embedding)`` for a batch already made by ``prepare_batch``."""
        return self._forward(batch)

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return with_flips(self.engine_forward, self.test_time_flips, self.test_time_crop)(
            np.asarray(batch, dtype=np.float32))

    def engine_forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One engine call on the batch as given, without the test-time flips."""
        if self.runtime is None:  # built directly around a Keras model
            from .runtime import split_outputs

            return split_outputs(self.model(np.asarray(batch, dtype=np.float32), training=False))
        return self.runtime(np.asarray(batch, dtype=np.float32))

    def predict(self, images: Sequence[Image.Image]) -> list[Result]:
        """Rank every class for each decoded photo, highest probability first."""
        if not images:
            return []
        batch = prepare_batch(images, self.input_size, self.preprocessing)
        logits, embedding = self._forward(batch)
        probabilities = softmax(logits, self.temperature)
        skin = np.ones(len(images), dtype=bool)
        if self.gate is not None:
            skin = np.asarray(self.gate.is_skin(embedding, batch), dtype=bool)
        embeddings = [None] * len(images) if embedding is None else list(embedding)
        kinds = [None] * len(images)
        if self.kind_probe is not None and embedding is not None:
            kinds = self.kind_probe.kinds(embedding)
        return [self._result(p, bool(s), e, k) for p, s, e, k in zip(probabilities, skin, embeddings, kinds)]

    def _result(self, probabilities: np.ndarray, is_skin: bool, embedding: np.ndarray | None = None,
                kind: str | None = None) -> Result:
        order = np.argsort(-probabilities, kind="stable")
        ranked = [
            ClassProbability(self.classes[i][0], self.classes[i][1], round(float(probabilities[i]), 6))
            for i in order
        ]
        if not is_skin:
            status, reason = STATUS_REJECTED, REASON_NOT_SKIN
        elif ranked[0].probability < self.min_confidence:
            status, reason = STATUS_UNCERTAIN, REASON_LOW_CONFIDENCE
        else:
            status, reason = STATUS_OK, None
        return Result(status, reason, self.version, ranked, embedding, kind)

    def predict_paths(self, paths: Iterable[str], batch_size: int = 32) -> Iterator[tuple[str, Result]]:
        """Classify many files in batches; an undecodable file yields an 'unreadable' result."""
        pending: list[tuple[str, Image.Image]] = []
        for path in paths:
            try:
                img = open_image(path, self.input_size)
                img.load()
            except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
                if pending:
                    yield from self._flush(pending)
                    pending = []
                yield path, Result(STATUS_REJECTED, REASON_UNREADABLE, self.version, [])
                continue
            pending.append((path, img))
            if len(pending) >= batch_size:
                yield from self._flush(pending)
                pending = []
        if pending:
            yield from self._flush(pending)

    def _flush(self, pending: list[tuple[str, Image.Image]]) -> Iterator[tuple[str, Result]]:
        results = self.predict([img for _, img in pending])
        for (path, _), result in zip(pending, results):
            yield path, result
