"""How far the model's image embedding moves between photos of the same lesion vs of different ones.

The lesion timeline (diagnosis/timeline.py) flags a new photo as "changed" when the cosine
distance between its embedding and the previous photo's exceeds
``LESION_CHANGE_EMBEDDING_THRESHOLD``. This script measures where that threshold should sit:

* **same lesion**: every pair of photos of one HAM10000 lesion (HAM has several photos of many
  lesions: other angles, magnifications, follow-up visits) — the drift a re-photographed,
  unchanged spot shows;
* **different lesion, same class**: pairs of photos of two different lesions with the same
  diagnosis — a spot that now looks like another spot of its kind;
* **different lesion, other class**, for reference.

Only lesions the shipped model never trained on are used: the HAM lesions that
``ml.data.split_samples`` (seed 0, the training seed) puts in the validation and test splits.
Embeddings are cast to float16 first, as ``Submission.embedding`` stores them.

    nice -n 10 .venv/bin/python -m bench.embedding_drift --ham DATA/ham10000 \\
        --lesions 150 --json var/embedding_drift.json

It prints percentiles of each distribution and, for the chosen percentile of the same-lesion
distances (default 95th), the share of different-lesion pairs that would be flagged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ml.artifact import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = DEFAULT_MODEL_DIR
PERCENTILES = (5, 25, 50, 75, 90, 95, 99)


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``1 - cos(a_i, b_i)`` computed in float64 from (float16-rounded) embeddings."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.einsum("ij,ij->i", a, b) / np.where(norms == 0, 1.0, norms)
    return 1.0 - np.clip(cos, -1.0, 1.0)


def pick_lesions(samples, splits, n_lesions: int, max_photos: int, seed: int):
    """Held-out lesions with two or more photos, spread round-robin over the classes."""
    from ml.data import split_samples

    held_out = [s for split in splits for s in split_samples(samples, seed=0)[split]]
    by_lesion = defaultdict(list)
    for s in held_out:
        by_lesion[s.group].append(s)
    by_class = defaultdict(list)
    for group, members in sorted(by_lesion.items()):
        if len(members) >= 2:
            by_class[members[0].label].append(group)
    rng = random.Random(seed)
    for groups in by_class.values():
        rng.shuffle(groups)
    chosen = []
    queues = {label: list(groups) for label, groups in sorted(by_class.items())}
    while len(chosen) < n_lesions and any(queues.values()):
        for label in sorted(queues):
            if queues[label] and len(chosen) < n_lesions:
                chosen.append(queues[label].pop())
    return [sorted(by_lesion[g], key=lambda s: s.path)[:max_photos] for g in chosen], {
        label: len(groups) for label, groups in by_class.items()}


def embed(classifier, paths, batch_size: int = 32) -> np.ndarray:
    from ml.preprocessing import open_image

    out = []
    for start in range(0, len(paths), batch_size):
        images = [open_image(p, classifier.input_size) for p in paths[start:start + batch_size]]
        results = classifier.predict(images)
        if results and results[0].embedding is None:
            raise SystemExit("this model has no embedding output")
        out.extend(np.asarray(r.embedding, dtype=np.float16) for r in results)
    return np.stack(out)


def summary(values: np.ndarray) -> dict:
    values = np.asarray(values)
    return {"n": int(values.size), "mean": round(float(values.mean()), 4),
            **{f"p{p}": round(float(np.percentile(values, p)), 4) for p in PERCENTILES}}


def measure(args) -> dict:
    from ml.data import load_ham
    from ml.inference import Classifier

    samples = load_ham(args.ham)
    lesions, available = pick_lesions(samples, args.splits, args.lesions, args.max_photos, args.seed)
    photos = [s for lesion in lesions for s in lesion]
    classifier = Classifier.load(args.model)
    started = time.perf_counter()
    vectors = embed(classifier, [s.path for s in photos])
    seconds = time.perf_counter() - started

    index = {s.path: i for i, s in enumerate(photos)}
    same = [(index[a.path], index[b.path]) for lesion in lesions for a, b in itertools.combinations(lesion, 2)]
    # One photo per lesion for the between-lesion pairs, so big lesions do not weigh more.
    firsts = [(lesion[0].label, index[lesion[0].path]) for lesion in lesions]
    same_class, other_class = [], []
    for (la, ia), (lb, ib) in itertools.combinations(firsts, 2):
        (same_class if la == lb else other_class).append((ia, ib))

    def distances(pairs):
        if not pairs:
            return np.zeros(0)
        left, right = zip(*pairs)
        return cosine_distances(vectors[list(left)], vectors[list(right)])

    d_same, d_class, d_other = distances(same), distances(same_class), distances(other_class)
    threshold = float(np.percentile(d_same, args.percentile))
    per_class = {}
    for label in sorted({lesion[0].label for lesion in lesions}):
        rows = [k for k, (ia, ib) in enumerate(same_class) if photos[ia].label == label]
        same_rows = [k for k, (ia, _ib) in enumerate(same) if photos[ia].label == label]
        per_class[label] = {
            "lesions": sum(1 for lesion in lesions if lesion[0].label == label),
            "same_lesion_median": round(float(np.median(d_same[same_rows])), 4) if same_rows else None,
            "other_lesion_median": round(float(np.median(d_class[rows])), 4) if rows else None,
        }
    return {
        "model": str(Path(args.model).name),
        "model_version": classifier.version,
        "splits": list(args.splits),
        "lesions": len(lesions),
        "photos": len(photos),
        "embedding_dim": int(vectors.shape[1]),
        "seconds_to_embed": round(seconds, 1),
        "held_out_lesions_with_2_plus_photos": available,
        "same_lesion": summary(d_same),
        "different_lesion_same_class": summary(d_class),
        "different_lesion_other_class": summary(d_other),
        "per_class": per_class,
        "percentile": args.percentile,
        "threshold": round(threshold, 4),
        "same_lesion_flagged": round(float((d_same > threshold).mean()), 4),
        "different_lesion_same_class_flagged": round(float((d_class > threshold).mean()), 4),
        "different_lesion_other_class_flagged": round(float((d_other > threshold).mean()), 4),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ham", type=Path, required=True, help="HAM10000 folder (HAM10000_metadata.csv + images/)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--lesions", type=int, default=150, help="held-out lesions with 2+ photos to use")
    parser.add_argument("--max-photos", type=int, default=3, help="photos per lesion at most")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--percentile", type=float, default=95.0,
                        help="of the same-lesion distances, the threshold to propose")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
