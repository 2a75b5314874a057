"""Where the test split's photos end up in the urgency tiers, with no answers given (a benchmark, not a test).

The question it answers (issue 12): how many photos of a skin cancer or pre-cancerous spot
(melanoma, BCC, SCC, actinic keratosis) end in the ``routine`` or ``self_care`` tier, per result
state (assessed, uncertain, not skin), under the rule in ``guidance/triage.py`` as it is now. Run it
before and after changing the rule and compare. The probabilities are the served engine's (the
shipped artifact, its test-time views and temperature), scored once and cached like
``python -m ml thresholds``; the triage is the same pure function the site calls.

    .venv/bin/python -m bench.triage_outcomes --ham DATA/ham10000 --dermnet DATA/dermnet \
        --derm7pt DATA/derm7pt --fitz17k DATA/fitz17k [--split-name test] [--out bench/triage_outcomes.json]

Per source and per skin-type group it reports malignant photos in routine/self-care and benign
photos sent to urgent (issue 22).

"Shown anyway" counts what happens when the person asks to see a not-assessed result anyway.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from guidance import triage
from ml.artifact import DEFAULT_MODEL_DIR

MALIGNANT = set(triage.MALIGNANT_CODES)


def _states(skin: np.ndarray, top_probability: np.ndarray, min_confidence: float) -> list[str]:
    return ["not_skin" if not s else "uncertain" if p < min_confidence else "assessed"
            for s, p in zip(skin, top_probability)]


def tally(codes, probabilities, labels, states, threshold, look_anyway: bool = False) -> dict:
    """Tier counts per state, for all photos and for the malignant ones, under the current rule.
    ``threshold``: one number, or one per photo (its kind's, as the site picks it)."""
    tiers = {"all": Counter(), "malignant": Counter()}
    by_state = {}
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(labels),))
    for probs, label, state, t in zip(probabilities, labels, states, thresholds):
        result = triage.triage(
            dict(zip(codes, map(float, probs))), uncertain=state == "uncertain", not_skin=state == "not_skin",
            answers={}, malignancy_threshold=float(t), look_anyway=look_anyway)
        group = "malignant" if label in MALIGNANT else "other"
        tiers["all"][result.tier] += 1
        if group == "malignant":
            tiers["malignant"][result.tier] += 1
        by_state.setdefault(state, {"malignant": Counter(), "other": Counter()})[group][result.tier] += 1
    low = (triage.ROUTINE, triage.SELF_CARE)
    malignant = sum(tiers["malignant"].values())
    missed = sum(tiers["malignant"][t] for t in low)
    benign = int(len(labels)) - malignant
    benign_urgent = tiers["all"][triage.URGENT] - tiers["malignant"][triage.URGENT]
    return {
        "photos": int(len(labels)),
        "malignant_photos": malignant,
        "malignant_in_routine_or_self_care": missed,
        "malignant_in_routine_or_self_care_share": round(missed / max(malignant, 1), 4),
        "malignant_in_urgent_share": round(tiers["malignant"][triage.URGENT] / max(malignant, 1), 4),
        "benign_photos": benign,
        "benign_in_urgent": benign_urgent,
        "benign_in_urgent_share": round(benign_urgent / max(benign, 1), 4),
        "tiers_all": dict(tiers["all"]),
        "tiers_malignant": dict(tiers["malignant"]),
        "by_state": {state: {group: dict(c) for group, c in groups.items()} for state, groups in sorted(by_state.items())},
    }


def per_group(codes, probabilities, labels, states, threshold, groups) -> dict:
    """``tally`` (as the rule shows it) for each group of photos: a source, a skin-type group."""
    groups = np.array([g or "" for g in groups], dtype=object)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(labels),))
    out = {}
    for name in sorted(set(groups.tolist()) - {""}):
        m = groups == name
        out[name] = tally(codes, probabilities[m], [lab for lab, keep in zip(labels, m) if keep],
                          [st for st, keep in zip(states, m) if keep], thresholds[m])
    return out


def main(argv=None) -> int:
    from ml.cli import load_splits
    from ml.data import skin_type_group
    from ml.inference import Classifier, softmax
    from ml.thresholds import score_split

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--ham", type=Path)
    p.add_argument("--dermnet", type=Path)
    p.add_argument("--derm7pt", type=Path)
    p.add_argument("--fitz17k", type=Path)
    p.add_argument("--split-name", default="test", choices=["val", "test"])
    p.add_argument("--scores-cache", type=Path, default=Path("ml/cache/scores"))
    p.add_argument("--out", type=Path, default=None, help="write the report here as JSON")
    args = p.parse_args(argv)
    data = argparse.Namespace(ham=args.ham, dermnet=args.dermnet, derm7pt=args.derm7pt, fitz17k=args.fitz17k, csv=[], seed=0,
                              split="0.70,0.15,0.15", label_column="label", path_column="path",
                              group_column=None, watermark=None)
    samples = load_splits(data)[args.split_name]
    classifier = Classifier.load(args.model)
    scored = score_split(classifier, samples, cache_dir=args.scores_cache)
    probabilities = softmax(scored["logits"], classifier.temperature)
    codes = [code for code, _ in classifier.classes]
    states = _states(scored["skin"], probabilities.max(axis=1), classifier.min_confidence)
    labels = [s.label for s in samples]
    thresholds = json.loads((Path(args.model) / "metadata.json").read_text())["thresholds"]
    threshold, by_kind = float(thresholds["malignancy"]), thresholds.get("malignancy_by_kind") or {}
    kinds = None
    if by_kind and classifier.kind_probe is not None:  # the site holds each photo to its kind's threshold
        kinds = classifier.kind_probe.kinds(scored["embedding"].astype(np.float32))
        threshold = np.array([float(by_kind.get(k, threshold)) for k in kinds])
    report = {"model_version": classifier.version, "engine": classifier.engine_key, "split": args.split_name,
              "malignancy_threshold": thresholds["malignancy"], "malignancy_threshold_by_kind": by_kind,
              "kinds_read": dict(Counter(kinds)) if kinds else None, "states": dict(Counter(states)),
              "rule": tally(codes, probabilities, labels, states, threshold)}
    report["shown_anyway"] = tally(codes, probabilities, labels, states, threshold, look_anyway=True)
    report["per_source"] = per_group(codes, probabilities, labels, states, threshold, [s.source for s in samples])
    report["per_skin_type"] = per_group(codes, probabilities, labels, states, threshold,
                                        [skin_type_group(s.skin_type) for s in samples])
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
