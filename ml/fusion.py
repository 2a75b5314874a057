"""Optional fusion of age, sex and body site with the image model (issue 3, point 3).

HAM10000 records each photo's age, sex and anatomic site, and the upload form asks for the
same three (optional) answers. Melanoma is rarer in the young, some lesions favour the face
or the trunk: that context could move the probabilities. Whether it helps is measured, not
assumed:

    python -m ml fusion --ham DATA/ham10000 --dermnet DATA/dermnet > docs/fusion_experiment.json

The fusion is a *residual* layer on top of the calibrated image model,

    fused logits = log p_image + W · m(age, sex, site) + b · any(m)

where ``m`` is a small vector (age/100, one-hot sex, one-hot site) that is all zeros when the
person gave none of them, so photos without context keep exactly the image model's
answer. ``W`` is fitted on the validation split with an L2 penalty (the image model was
fitted on train, so its train logits are over-confident and useless for this), the penalty
chosen by 5-fold cross-validation grouped by lesion, and the result is scored on the test
split it never saw. It is a measurement: the shipped model does not use context (see
docs/MODEL_CARD.md, "Fusion of age, sex and site", for the numbers and why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

SEXES = ("female", "male")
SITES = ("scalp", "face", "ear", "neck", "chest", "abdomen", "back", "trunk", "upper extremity", "hand",
         "lower extremity", "foot", "acral", "genital")


def context_vector(age: float | None, sex: str | None, site: str | None) -> np.ndarray:
    """``[age/100, sex one-hot (2), site one-hot (14)]``; unknown parts stay zero."""
    v = np.zeros(1 + len(SEXES) + len(SITES), dtype=np.float64)
    if age is not None and not np.isnan(age):
        v[0] = float(age) / 100.0
    if sex in SEXES:
        v[1 + SEXES.index(sex)] = 1.0
    if site in SITES:
        v[1 + len(SEXES) + SITES.index(site)] = 1.0
    return v


def context_matrix(samples) -> np.ndarray:
    return np.stack([context_vector(s.age, s.sex, s.site) for s in samples])


def _design(context: np.ndarray) -> np.ndarray:
    """Context plus one 'some context was given' column (the bias that applies only then)."""
    given = (np.abs(context).sum(axis=1, keepdims=True) > 0).astype(np.float64)
    return np.hstack([context, given])


def fused_logits(log_probs: np.ndarray, context: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.asarray(log_probs, dtype=np.float64) + _design(context) @ weights


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit(log_probs: np.ndarray, context: np.ndarray, y: np.ndarray, l2: float,
        sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Weights ``(d+1, C)`` minimising mean weighted NLL + ``l2 * |W|²`` (L-BFGS)."""
    from scipy.optimize import minimize

    x = _design(context)
    n, d = x.shape
    c = log_probs.shape[1]
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sw = sw / sw.sum()
    onehot = np.eye(c)[y]

    def objective(flat):
        w = flat.reshape(d, c)
        p = _softmax(log_probs + x @ w)
        loss = -np.sum(sw * np.log(np.clip(p[np.arange(n), y], 1e-12, None))) + l2 * np.sum(w * w)
        grad = x.T @ ((p - onehot) * sw[:, None]) + 2 * l2 * w
        return loss, grad.ravel()

    result = minimize(objective, np.zeros(d * c), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return result.x.reshape(d, c)


def balanced_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    pred = probs.argmax(axis=1)
    recalls = [np.mean(pred[y == k] == k) for k in np.unique(y)]
    return float(np.mean(recalls))


def group_folds(groups: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per photo; all photos of one lesion share a fold."""
    unique = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    fold_of = {unique[i]: int(j % k) for j, i in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def cross_validate(log_probs, context, y, groups, l2_grid=(1e-4, 1e-3, 1e-2, 1e-1), k: int = 5,
                   balanced: bool = True) -> dict:
    """Out-of-fold balanced accuracy for each L2 strength (and for no fusion at all)."""
    folds = group_folds(groups, k)
    weights = _balanced_weights(y) if balanced else None
    results = {"none": balanced_accuracy(log_probs, y)}
    for l2 in l2_grid:
        oof = np.zeros_like(log_probs)
        for f in range(k):
            train, hold = folds != f, folds == f
            w = fit(log_probs[train], context[train], y[train], l2, None if weights is None else weights[train])
            oof[hold] = fused_logits(log_probs[hold], context[hold], w)
        results[l2] = balanced_accuracy(oof, y)
    return results


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y)
    return (len(y) / (len(counts) * np.maximum(counts, 1)))[y]


def _headline(report: dict) -> dict:
    keys = ("balanced_accuracy", "top4_accuracy", "mel_auc", "ece")
    return {name: {k: report[name].get(k) for k in keys if k in report[name]}
            for name in ("all", "product12", "ham7", "ham7_lesion_level") if name in report}


def fusion_experiment(classifier, splits: dict, cache_dir: str | Path | None = None,
                      l2_grid=(1e-4, 1e-3, 1e-2, 1e-1)) -> dict:
    """Cross-validate the fusion on validation, refit on all of it, score the test split.

    Three variants, so the gain is attributed honestly: ``image`` (no fusion), ``prior``
    (only the 'context given' bias: a re-weighting of the classes for dermoscopic photos,
    no use of the answers) and ``context`` (age, sex and site).
    """
    from .evaluation import _labels, evaluate_probabilities
    from .inference import softmax
    from .thresholds import score_split

    codes = [c for c, _ in classifier.classes]
    data = {}
    for name in ("val", "test"):
        samples = splits[name]
        out = score_split(classifier, samples, cache_dir=cache_dir)
        logp = np.log(np.clip(softmax(out["logits"], classifier.temperature), 1e-12, None))
        data[name] = (samples, logp, context_matrix(samples), _labels(samples, codes))

    samples, logp, ctx, y = data["val"]
    known = y >= 0
    groups = [s.group for s in samples]
    given = (np.abs(ctx).sum(axis=1, keepdims=True) > 0).astype(np.float64)
    # "prior": the context vector reduced to its first slot carrying the 'given' flag, so only a
    # per-class bias for photos with context is learnt.
    variants = {"prior": np.hstack([given, np.zeros((len(ctx), ctx.shape[1] - 1))]), "context": ctx}
    report = {"val_cross_validated_balanced_accuracy": {}, "test": {}, "model_version": classifier.version}
    chosen = {}
    for name, c in variants.items():
        cv = cross_validate(logp[known], c[known], y[known], [g for g, k in zip(groups, known) if k], l2_grid)
        report["val_cross_validated_balanced_accuracy"]["image"] = cv.pop("none")
        best_l2 = max(cv, key=cv.get)
        report["val_cross_validated_balanced_accuracy"][name] = {"best_l2": best_l2, "by_l2": cv}
        chosen[name] = (best_l2, fit(logp[known], c[known], y[known], best_l2, _balanced_weights(y[known])))

    t_samples, t_logp, t_ctx, _ = data["test"]
    t_given = (np.abs(t_ctx).sum(axis=1, keepdims=True) > 0).astype(np.float64)
    t_variants = {"prior": np.hstack([t_given, np.zeros((len(t_ctx), t_ctx.shape[1] - 1))]), "context": t_ctx}
    report["test"]["image"] = _headline(evaluate_probabilities(np.exp(t_logp), None, t_samples, codes))
    for name, (l2, w) in chosen.items():
        probs = _softmax(fused_logits(t_logp, t_variants[name], w))
        report["test"][name] = _headline(evaluate_probabilities(probs, None, t_samples, codes))
    cv = report["val_cross_validated_balanced_accuracy"]
    report["val_gain"] = cv["context"]["by_l2"][cv["context"]["best_l2"]] - cv["image"]
    return report
