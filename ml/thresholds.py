"""Operating points chosen on validation data: the malignancy threshold of the urgency triage.

The triage (``guidance/triage.py``) sends a photo to the *urgent* tier when the summed
calibrated probability of the skin-cancer classes (melanoma, basal cell carcinoma,
squamous cell carcinoma, actinic keratosis / Bowen's disease) reaches a threshold. Issue 4
asks for the largest threshold at which the urgent tier still catches at least 95 % of the
melanomas of the *validation* split, and for the price in false alarms. A photo that the
not-skin gate rejects is never urgent on its probabilities (the triage ignores them), so
such a melanoma counts as missed here too.

    python -m ml thresholds --ham DATA/ham10000 --dermnet DATA/dermnet [--write]

scores the validation and test splits through the artifact, picks the threshold on
validation only, reports what it gives on both, and with ``--write`` records it in the
artifact's ``metadata.json`` as ``thresholds.malignancy`` (with the report under
``malignancy_threshold``), where the web app reads it.

Issue 22 widened the rule: the threshold must catch ``target`` of the *malignant* photos (all
four classes, not only melanomas) of *every* source on its own (``--positive malignant --rule
every_source``, the default since v8), so a clinic or a kind of photo whose scores run lower is
not averaged away by the large dermoscopic set. The report gives, per source and per skin-type
group, the share of malignant photos caught and of benign photos sent to urgent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

MALIGNANT_CODES = ("mel", "bcc", "scc", "akiec")
MELANOMA = "mel"
POSITIVES = ("melanoma", "malignant")
RULES = ("pooled", "every_source", "per_kind")


def positives(labels: Sequence[str], positive: str) -> np.ndarray:
    """The photos the urgent tier must catch: melanomas, or every malignant class."""
    if positive not in POSITIVES:
        raise ValueError(f"positive must be one of {POSITIVES}")
    labels = np.asarray(labels)
    return labels == MELANOMA if positive == "melanoma" else np.isin(labels, MALIGNANT_CODES)


def threshold_for_sources(scores, labels, sources, eligible=None, target_sensitivity: float = 0.95,
                          positive: str = "malignant", rule: str = "every_source") -> tuple[float, dict]:
    """The threshold of ``rule``: ``pooled`` fits all photos at once; ``every_source`` takes the
    lowest of the sources' own thresholds, so each source reaches the target (a source with no
    positive photo sets none). Returns (threshold, {source: its own threshold})."""
    if rule not in RULES or rule == "per_kind":
        raise ValueError(f"rule must be pooled or every_source here, not {rule!r} (per_kind: thresholds_by_kind)")
    scores = np.asarray(scores, dtype=np.float64)
    sources = np.asarray(sources)
    eligible = np.ones(len(scores), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    wanted = positives(labels, positive)
    own = {}
    for src in sorted(set(sources.tolist())):
        m = sources == src
        if wanted[m].any():
            own[src] = choose_threshold(scores[m], wanted[m], eligible[m], target_sensitivity)
    if rule == "pooled":
        return choose_threshold(scores, wanted, eligible, target_sensitivity), own
    if not own:
        raise ValueError("no positive photos to choose a threshold on")
    return min(own.values()), own


def malignancy_scores(probs: np.ndarray, codes: Sequence[str]) -> np.ndarray:
    """p(mel) + p(bcc) + p(scc) + p(akiec) for each photo (the classes the model has)."""
    idx = [list(codes).index(c) for c in MALIGNANT_CODES if c in codes]
    return np.asarray(probs, dtype=np.float64)[:, idx].sum(axis=1)


def choose_threshold(scores: np.ndarray, positive: np.ndarray, eligible: np.ndarray | None = None,
                     target_sensitivity: float = 0.95) -> float:
    """The largest threshold t with ``mean(scores[positive] >= t and eligible) >= target``.

    ``eligible`` marks photos that can reach the tier at all (not rejected by the gate);
    an ineligible positive is a miss whatever the threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    eligible = np.ones_like(positive) if eligible is None else np.asarray(eligible, dtype=bool)
    n = int(positive.sum())
    if n == 0:
        raise ValueError("no positive photos to choose a threshold on")
    needed = math.ceil(target_sensitivity * n - 1e-9)
    reachable = np.sort(scores[positive & eligible])[::-1]
    if needed > len(reachable):
        raise ValueError(f"only {len(reachable)} of {n} positives can reach the tier; {needed} needed")
    if needed == 0:
        return float("inf")
    return float(reachable[needed - 1])


def operating_point(scores: np.ndarray, labels: Sequence[str], threshold: float,
                    eligible: np.ndarray | None = None) -> dict:
    """What the threshold does on one split: sensitivities and the false-alarm rate.

    ``threshold`` is one number, or one per photo (the threshold of the photo's kind).
    A false alarm is a photo whose true class is none of the four malignant classes that
    lands in the urgent tier; ``urgent_share`` is the share of all photos sent there.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    eligible = np.ones(len(scores), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    urgent = (scores >= threshold) & eligible
    mel = labels == MELANOMA
    malignant = np.isin(labels, MALIGNANT_CODES)
    benign = ~malignant

    def rate(mask):
        return float(urgent[mask].mean()) if mask.any() else None

    return {
        "threshold": float(threshold) if np.ndim(threshold) == 0 else None,
        "photos": int(len(scores)),
        "melanomas": int(mel.sum()),
        "melanoma_sensitivity": rate(mel),
        "malignant_photos": int(malignant.sum()),
        "malignant_sensitivity": rate(malignant),
        "benign_photos": int(benign.sum()),
        "false_alarm_rate": rate(benign),
        "urgent_share": float(urgent.mean()) if len(urgent) else None,
        "urgent_precision": float(malignant[urgent].mean()) if urgent.any() else None,
    }


def thresholds_by_kind(scores, labels, sources, kinds, eligible=None, target_sensitivity: float = 0.95,
                       positive: str = "malignant") -> dict[str, float]:
    """The ``every_source`` threshold within each kind of photo: dermoscopic photos are held to
    the dermoscopic sources' threshold, clinical ones to the clinical sources'. ``kinds`` is
    what serving will know: the probe's verdict (``ml.photo_kind``), not the source."""
    kinds = np.asarray(kinds)
    eligible = np.ones(len(kinds), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    out = {}
    for kind in sorted(set(kinds.tolist())):
        m = kinds == kind
        if positives(np.asarray(labels)[m], positive).any():
            out[kind], _ = threshold_for_sources(np.asarray(scores)[m], np.asarray(labels)[m], np.asarray(sources)[m],
                                                 eligible[m], target_sensitivity, positive, "every_source")
    return out


def per_photo_threshold(by_kind: dict[str, float], kinds, fallback: float) -> np.ndarray:
    """Each photo's threshold from its kind (``fallback`` for a kind without one)."""
    return np.array([by_kind.get(k, fallback) for k in kinds], dtype=np.float64)


def per_source(scores, labels, sources, threshold, eligible) -> dict:
    """``operating_point`` per group name in ``sources`` (a source, a skin-type group...);
    photos whose group is None or empty belong to none."""
    sources = np.array([g or "" for g in sources], dtype=object)

    def part(m):
        return threshold if np.ndim(threshold) == 0 else np.asarray(threshold)[m]

    return {
        src: operating_point(np.asarray(scores)[sources == src], np.asarray(labels)[sources == src],
                             part(sources == src), np.asarray(eligible)[sources == src])
        for src in sorted(set(sources.tolist()) - {""})
    }


def score_split(classifier, samples, batch_size: int = 64, cache_dir: str | Path | None = None) -> dict:
    """Logits, embeddings, input contrast and the gate's verdict for each photo of a split.

    With ``cache_dir`` the arrays are kept in ``<cache_dir>/scores-<version>-<engine>-<digest>.npz``
    (keyed by the model version, the file that ran it, the test-time views and the photo list:
    the int8 engine's logits are not the Keras model's), so the threshold and the fusion
    experiments can reuse one pass over the photos. The gate's verdict is recomputed from
    the cached embedding and contrast each time, so a retuned gate is taken into account.
    """
    import hashlib

    from .data import load_training_image
    from .gate import MahalanobisGate
    from .preprocessing import prepare_batch

    digest = hashlib.sha256("\n".join(s.path for s in samples).encode()).hexdigest()[:16]
    engine = classifier.engine_key
    cache = Path(cache_dir) / f"scores-{classifier.version}-{engine}-{digest}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            out = {k: data[k] for k in data.files}
    else:
        logits, embeddings, contrast = [], [], []
        for i in range(0, len(samples), batch_size):
            images = [load_training_image(s, classifier.input_size) for s in samples[i : i + batch_size]]
            batch = prepare_batch(images, classifier.input_size, classifier.preprocessing)
            lg, em = classifier.forward(batch)
            logits.append(lg)
            embeddings.append(em)
            contrast.append(MahalanobisGate.pixel_std(batch))
        out = {"logits": np.concatenate(logits), "embedding": np.concatenate(embeddings).astype(np.float16),
               "pixel_std": np.concatenate(contrast)}
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **out)
    out["skin"] = np.ones(len(samples), dtype=bool)
    gate = classifier.gate
    if gate is not None:
        out["skin"] = (gate.distance(out["embedding"].astype(np.float32)) <= gate.threshold) & (
            out["pixel_std"] >= gate.min_pixel_std)
    return out


def malignancy_report(classifier, splits: dict, target_sensitivity: float = 0.95,
                      cache_dir: str | Path | None = None, positive: str = "malignant",
                      rule: str = "every_source") -> dict:
    """Choose the threshold on ``splits['val']`` and measure it there and on ``splits['test']``,
    overall, per source and per skin-type group."""
    from .data import skin_type_group
    from .inference import softmax

    codes = [c for c, _ in classifier.classes]
    scored = {}
    for name in ("val", "test"):
        samples = splits[name]
        out = score_split(classifier, samples, cache_dir=cache_dir)
        probs = softmax(out["logits"], classifier.temperature)
        scored[name] = (malignancy_scores(probs, codes), [s.label for s in samples], [s.source for s in samples],
                        out["skin"], [skin_type_group(s.skin_type) for s in samples])
    scores, labels, sources, skin, _ = scored["val"]
    kinds = {}
    if rule == "per_kind":
        if classifier.kind_probe is None:
            raise ValueError("the per_kind rule needs the artifact's kind probe: run python -m ml kind-probe --write")
        for name in scored:
            embedding = score_split(classifier, splits[name], cache_dir=cache_dir)["embedding"].astype(np.float32)
            kinds[name] = classifier.kind_probe.kinds(embedding)
    # the fallback (a photo whose kind is unknown) is the every-source threshold over all photos
    threshold, own = threshold_for_sources(scores, labels, sources, skin, target_sensitivity, positive,
                                           "pooled" if rule == "pooled" else "every_source")
    report = {"target_sensitivity": target_sensitivity, "positive": positive, "rule": rule, "chosen_on": "val",
              "threshold": threshold, "threshold_per_source": own, "model_version": classifier.version}
    if rule == "per_kind":
        report["threshold_by_kind"] = thresholds_by_kind(scores, labels, sources, kinds["val"], skin,
                                                         target_sensitivity, positive)
    if positive == "melanoma":
        report["target_melanoma_sensitivity"] = target_sensitivity
    for name, (s, lab, src, ok, types) in scored.items():
        t = per_photo_threshold(report["threshold_by_kind"], kinds[name], threshold) if kinds else threshold
        report[name] = operating_point(s, lab, t, ok)
        report[name]["per_source"] = per_source(s, lab, src, t, ok)
        report[name]["per_skin_type"] = per_source(s, lab, types, t, ok)
    return report


def write_threshold(model_dir: str | Path, report: dict) -> None:
    """Record the chosen threshold in the artifact's metadata (only these keys change)."""
    path = Path(model_dir) / "metadata.json"
    metadata = json.loads(path.read_text())
    thresholds = metadata.setdefault("thresholds", {})
    thresholds["malignancy"] = round(report["threshold"], 6)
    if report.get("threshold_by_kind"):
        thresholds["malignancy_by_kind"] = {k: round(v, 6) for k, v in report["threshold_by_kind"].items()}
    else:
        thresholds.pop("malignancy_by_kind", None)
    metadata["malignancy_threshold"] = report
    path.write_text(json.dumps(metadata, indent=2) + "\n")
