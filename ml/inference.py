"""Load a model artifact once and turn decoded photos into ranked, calibrated classes.

This is the only ``ml`` API the web app uses. Loading imports TensorFlow, so
callers keep one ``Classifier`` per process (the Celery worker loads it after
forking; TensorFlow is not fork-safe once initialised).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from .artifact import ArtifactError, read_metadata
from .classes import label_for
from .preprocessing import open_image, prepare_batch

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
    """A loaded, checksum-verified model artifact."""

    def __init__(self, directory: Path, metadata: dict, model, gate=None):
        self.directory = directory
        self.metadata = metadata
        self.model = model
        self.gate = gate
        self._call = None
        self.version: str = metadata["version"]
        self.input_size: tuple[int, int] = tuple(metadata["input_size"])[:2]
        self.preprocessing: str = metadata["preprocessing"]
        self.temperature: float = float(metadata.get("temperature") or 1.0)
        self.min_confidence: float = float((metadata.get("thresholds") or {}).get("min_confidence", 0.0))
        self.classes: list[tuple[str, str]] = [
            (c["code"], c.get("label") or label_for(c["code"])) for c in metadata["classes"]
        ]

    @classmethod
    def load(cls, directory: str | Path) -> "Classifier":
        """Verify checksums, then load the Keras model (and the gate, if the artifact has one)."""
        directory = Path(directory)
        metadata = read_metadata(directory, verify=True)
        model_path = directory / metadata.get("model_file", MODEL_FILE)
        if not model_path.is_file():
            raise ArtifactError(f"model file {model_path.name} is missing from {directory}")
        import keras  # deferred: importing TensorFlow costs seconds

        model = keras.saving.load_model(model_path, compile=False)
        gate = None
        if metadata.get("gate"):
            from .gate import load_gate

            gate = load_gate(directory, metadata["gate"])
        return cls(directory, metadata, model, gate)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw ``(logits, embedding)`` for a batch already made by ``prepare_batch``."""
        return self._forward(batch)

    def _compiled_call(self):
        """The model call traced once as a graph: eager calls cost ~8x more per single image."""
        if self._call is None:
            import tensorflow as tf

            model = self.model
            self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return self._call

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self._compiled_call()(np.asarray(batch, dtype=np.float32))
        if isinstance(outputs, dict):
            logits, embedding = outputs["logits"], outputs.get("embedding")
        elif isinstance(outputs, (list, tuple)):
            logits = outputs[0]
            embedding = outputs[1] if len(outputs) > 1 else None
        else:
            logits, embedding = outputs, None
        logits = np.asarray(logits)
        embedding = None if embedding is None else np.asarray(embedding)
        return logits, embedding

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
        return [self._result(p, bool(s), e) for p, s, e in zip(probabilities, skin, embeddings)]

    def _result(self, probabilities: np.ndarray, is_skin: bool, embedding: np.ndarray | None = None) -> Result:
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
        return Result(status, reason, self.version, ranked, embedding)

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
