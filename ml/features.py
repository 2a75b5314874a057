"""Frozen-backbone features, computed once and cached on disk.

A 2-core CPU cannot train a CNN on 14k photos end to end in a few hours, but it
can run the frozen ImageNet backbone over every photo (and a few augmented
views of each training photo) once. The cache holds, per split and view, shards
of the pooled embedding and, optionally, one intermediate activation ("tap") so
that the last stage can be fine-tuned later without re-running the front.

Extraction is resumable: shards are written atomically and skipped when present.
The cache directory records what produced it (``manifest.json``) and refuses to
mix features from a different backbone, seed or split.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Sample, load_view
from .preprocessing import prepare_batch

log = logging.getLogger(__name__)

SHARD_SIZE = 256
MANIFEST = "manifest.json"


class CacheError(Exception):
    pass


def manifest_for(splits: dict[str, list[Sample]], arch: str, weights, input_size, mode, seed, tap) -> dict:
    return {
        "arch": arch,
        "weights": str(weights),
        "input_size": list(input_size),
        "preprocessing": mode,
        "seed": seed,
        "tap": tap,
        "splits": {k: [[s.path, s.label, s.source] for s in v] for k, v in splits.items()},
    }


def open_cache(cache_dir: str | Path, manifest: dict) -> Path:
    """Create the cache or check that an existing one was made the same way."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / MANIFEST
    if path.is_file():
        existing = json.loads(path.read_text())
        for key in manifest:
            if existing.get(key) != manifest[key]:
                raise CacheError(
                    f"feature cache {cache_dir} was made with a different {key!r}; "
                    "use another --cache directory or delete this one"
                )
    else:
        path.write_text(json.dumps(manifest))
    return cache_dir


def _shard_path(cache_dir: Path, split: str, view: int, index: int) -> Path:
    return cache_dir / split / f"v{view}" / f"shard_{index:05d}.npz"


def training_batch(samples: Sequence[Sample], view: int, seed: int, input_size, mode: str) -> np.ndarray:
    """The exact tensor training sees for these photos: the serving decoder and
    ``prepare_batch``, with only the watermark crop and (view > 0) augmentation in between."""
    return prepare_batch([load_view(s, view, seed, input_size) for s in samples], input_size, mode)


def extraction_model(backbone_model, tap_layer: str | None, tap_only: bool = False):
    """The backbone with the tap activation as a second output (or only the embedding,
    or, with ``tap_only``, only the part of the network up to the tap)."""
    import keras

    if tap_layer is None:
        return backbone_model
    if tap_only:
        return keras.Model(backbone_model.input, backbone_model.get_layer(tap_layer).output)
    return keras.Model(backbone_model.input, [backbone_model.get_layer(tap_layer).output, backbone_model.output])


def extract(
    cache_dir: str | Path,
    jobs: Sequence[tuple[str, int]],
    splits: dict[str, list[Sample]],
    backbone_model,
    input_size: Sequence[int],
    mode: str,
    seed: int,
    tap_layer: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    tap_only: bool = False,
) -> dict:
    """Compute every missing shard for the (split, view) jobs, in order. Returns timings."""
    import tensorflow as tf
    from tqdm import tqdm

    cache_dir = Path(cache_dir)
    model = extraction_model(backbone_model, tap_layer, tap_only)
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    todo = []
    for split, view in jobs:
        samples = splits[split]
        for index, start in enumerate(range(0, len(samples), SHARD_SIZE)):
            if not _shard_path(cache_dir, split, view, index).is_file():
                todo.append((split, view, index, samples[start : start + SHARD_SIZE]))
    total = sum(len(t[3]) for t in todo)
    timings = {"images": total, "seconds": 0.0}
    if not todo:
        return timings

    def load_batch(items):
        return training_batch([s for s, _ in items], items[0][1], seed, input_size, mode)

    started = time.time()
    bar = tqdm(total=total, unit="img", mininterval=20, disable=not progress, desc="features")
    with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while the CPU runs the net
        for split, view, index, shard in todo:
            batches = [[(s, view) for s in shard[i : i + batch_size]] for i in range(0, len(shard), batch_size)]
            embeddings, taps = [], []
            future = pool.submit(load_batch, batches[0])
            for b in range(len(batches)):
                batch = future.result()
                if b + 1 < len(batches):
                    future = pool.submit(load_batch, batches[b + 1])
                out = forward(tf.constant(batch))
                if tap_only:
                    taps.append(np.asarray(out, dtype=np.float16))
                elif tap_layer is None:
                    embeddings.append(np.asarray(out, dtype=np.float32))
                else:
                    taps.append(np.asarray(out[0], dtype=np.float16))
                    embeddings.append(np.asarray(out[1], dtype=np.float32))
                bar.update(len(batch))
            path = _shard_path(cache_dir, split, view, index)
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {"embedding": np.concatenate(embeddings)} if embeddings else {}
            if taps:
                arrays["tap"] = np.concatenate(taps)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
    bar.close()
    timings["seconds"] = round(time.time() - started, 1)
    log.info("extracted %d images in %.0f s (%.1f img/s)", total, timings["seconds"], total / max(timings["seconds"], 1e-9))
    return timings


def available_views(cache_dir: str | Path, split: str, n_samples: int) -> list[int]:
    """Views whose shards are all present."""
    cache_dir = Path(cache_dir)
    n_shards = (n_samples + SHARD_SIZE - 1) // SHARD_SIZE
    views = []
    root = cache_dir / split
    if not root.is_dir():
        return views
    for d in sorted(root.glob("v*"), key=lambda p: int(p.name[1:])):
        if all(_shard_path(cache_dir, split, int(d.name[1:]), i).is_file() for i in range(n_shards)):
            views.append(int(d.name[1:]))
    return views


def load_features(cache_dir: str | Path, split: str, view: int, n_samples: int, key: str = "embedding") -> np.ndarray:
    cache_dir = Path(cache_dir)
    n_shards = (n_samples + SHARD_SIZE - 1) // SHARD_SIZE
    parts = []
    for i in range(n_shards):
        path = _shard_path(cache_dir, split, view, i)
        if not path.is_file():
            raise CacheError(f"missing feature shard {path}; run extraction first")
        with np.load(path) as data:
            parts.append(data[key])
    out = np.concatenate(parts)
    if len(out) != n_samples:
        raise CacheError(f"{split}/v{view}: {len(out)} cached rows for {n_samples} samples")
    return out
