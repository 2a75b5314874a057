"""LiteRT (TFLite) export of an artifact's Keras model, float16 weights.

The export is added to the artifact only if its balanced accuracy on the held-out split is within
``max_drop`` (0.5 point) of the Keras model's, measured on the same photos.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from .artifact import read_metadata, write_artifact

log = logging.getLogger(__name__)

TFLITE_FILE = "model_fp16.tflite"


def convert_fp16(model_path: Path) -> bytes:
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


class LiteModel:
    """Runs a converted model in batches; returns (logits, embedding) like the Keras one."""

    def __init__(self, path: Path, n_classes: int, batch_size: int = 32, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self.batch_size = batch_size
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        shape = list(self.input["shape"])
        self.interpreter.resize_tensor_input(self.input["index"], [batch_size] + shape[1:])
        self.interpreter.allocate_tensors()
        outs = self.interpreter.get_output_details()
        self.logits_index = next(o["index"] for o in outs if o["shape"][-1] == n_classes)
        self.embedding_index = next(o["index"] for o in outs if o["index"] != self.logits_index)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, embeddings = [], []
        for i in range(0, len(batch), self.batch_size):
            part = np.asarray(batch[i : i + self.batch_size], dtype=np.float32)
            n = len(part)
            if n < self.batch_size:
                part = np.concatenate([part, np.zeros((self.batch_size - n,) + part.shape[1:], np.float32)])
            self.interpreter.set_tensor(self.input["index"], part)
            self.interpreter.invoke()
            logits.append(self.interpreter.get_tensor(self.logits_index)[:n].copy())
            embeddings.append(self.interpreter.get_tensor(self.embedding_index)[:n].copy())
        return np.concatenate(logits), np.concatenate(embeddings)


def export_tflite(model_dir: str | Path, samples, max_drop: float = 0.005, batch_size: int = 32) -> dict:
    """Convert, score Keras and LiteRT on ``samples`` (held-out photos), and add the file to the
    artifact (re-writing ``metadata.json`` with its checksum) only when it is close enough."""
    from .data import load_training_image
    from .evaluation import evaluate_probabilities
    from .inference import Classifier, softmax
    from .preprocessing import prepare_batch

    model_dir = Path(model_dir)
    classifier = Classifier.load(model_dir)
    codes = [c for c, _ in classifier.classes]
    tmp = model_dir.parent / f".{model_dir.name}.{TFLITE_FILE}"
    tmp.write_bytes(convert_fp16(model_dir / classifier.metadata.get("model_file", "model.keras")))
    lite = LiteModel(tmp, len(codes), batch_size)
    keras_logits, lite_logits = [], []
    t_keras = t_lite = 0.0
    for i in range(0, len(samples), 256):
        batch = prepare_batch([load_training_image(s, classifier.input_size) for s in samples[i : i + 256]],
                              classifier.input_size, classifier.preprocessing)
        t = time.time()
        for j in range(0, len(batch), batch_size):
            keras_logits.append(classifier.forward(batch[j : j + batch_size])[0])
        t_keras += time.time() - t
        t = time.time()
        lite_logits.append(lite(batch)[0])
        t_lite += time.time() - t
    scores = {}
    for name, logits in (("keras", np.concatenate(keras_logits)), ("tflite_fp16", np.concatenate(lite_logits))):
        report = evaluate_probabilities(softmax(logits, classifier.temperature), None, samples, codes)
        scores[name] = {"balanced_accuracy": report["all"]["balanced_accuracy"], "ece": report["all"]["ece"]}
    scores["keras"]["ms_per_image"] = 1000 * t_keras / max(len(samples), 1)
    scores["tflite_fp16"]["ms_per_image"] = 1000 * t_lite / max(len(samples), 1)
    drop = scores["keras"]["balanced_accuracy"] - scores["tflite_fp16"]["balanced_accuracy"]
    result = {"file": TFLITE_FILE, "photos": len(samples), "balanced_accuracy_drop": drop, **scores,
              "accepted": bool(drop <= max_drop)}
    if result["accepted"]:
        tmp.replace(model_dir / TFLITE_FILE)
        metadata = read_metadata(model_dir)
        metadata.pop("files", None)
        metadata["tflite"] = result
        write_artifact(model_dir, metadata)
    else:
        tmp.unlink()
        log.warning("TFLite export loses %.2f points of balanced accuracy; not added", 100 * drop)
    log.info("tflite export: %s", json.dumps(result))
    return result
