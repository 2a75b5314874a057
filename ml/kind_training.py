"""``python -m ml kind-probe``: fit the dermoscopic-or-clinical probe (``ml.photo_kind``) on the
training photos' embeddings, as the served engine computes them, and measure it per source.

    python -m ml kind-probe --model ml/artifacts/NAME $SETS --write

Run it after ``export-tflite`` (the probe reads the served engine's embedding) and before
``thresholds`` (whose ``per_kind`` rule reads the probe's verdict).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def kind_probe_report(model_dir, splits: dict, cache_dir: str | Path | None = None, write: bool = False) -> dict:
    from .artifact import read_metadata, write_artifact
    from .inference import Classifier
    from .photo_kind import KindProbe
    from .thresholds import score_split

    classifier = Classifier.load(model_dir)
    embedded = {name: score_split(classifier, splits[name], cache_dir=cache_dir)["embedding"].astype(np.float32)
                for name in ("train", "val", "test")}
    probe = KindProbe.fit(embedded["train"], [s.kind for s in splits["train"]])
    report = {"fitted_on": "train", "engine": classifier.engine_key}
    for name in ("val", "test"):
        said = np.array(probe.kinds(embedded[name]))
        truth = np.array([s.kind for s in splits[name]])
        sources = np.array([s.source for s in splits[name]])
        report[name] = {"accuracy": float(np.mean(said == truth)),
                        "per_source": {src: float(np.mean(said[sources == src] == truth[sources == src]))
                                       for src in sorted(set(sources.tolist()))}}
    if write:
        metadata = read_metadata(model_dir, verify=True)
        metadata["photo_kind"] = {**probe.save(model_dir), "report": report}
        write_artifact(model_dir, metadata)
    return report
