"""Evaluation: metrics per class set and data source, abstention, the gate, the watermark
check, and the PNGs (confusion matrix, training curves)."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .classes import CLASS_LABELS, OTHER_CODE
from .metrics import classification_report, expected_calibration_error

log = logging.getLogger(__name__)

HAM_CODES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
PRODUCT_CODES = tuple(CLASS_LABELS)


def _indices(codes: Sequence[str], wanted: Sequence[str]) -> list[int]:
    return [list(codes).index(c) for c in wanted if c in codes]


def _labels(samples, codes) -> np.ndarray:
    index = {c: i for i, c in enumerate(codes)}
    return np.array([index.get(s.label, -1) for s in samples], dtype=np.int64)


def lesion_level(probs: np.ndarray, samples) -> tuple[np.ndarray, list]:
    """Average the probabilities of photos of the same lesion (HAM ``lesion_id``)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[s.group].append(i)
    keys = sorted(groups)
    return np.stack([probs[groups[k]].mean(axis=0) for k in keys]), [samples[groups[k][0]] for k in keys]


def evaluate_probabilities(probs: np.ndarray, raw_probs: np.ndarray | None, samples, codes: Sequence[str],
                           skin: np.ndarray | None = None) -> dict:
    """Headline metrics. ``all``: every class of the model, photos whose label is one of them;
    ``product12``: the 12 product classes (columns restricted and renormalised);
    ``ham7``: HAM photos on the 7 HAM classes (image level and lesion level); per source;
    ``by_group``: issue 22's numbers per source, kind of photo and skin type (``ml.subgroups``),
    with the gate's false rejections when ``skin`` (its verdict per photo) is given."""
    from .subgroups import report_by_group

    codes = list(codes)
    y = _labels(samples, codes)
    known = y >= 0
    out: dict = {}
    out["all"] = classification_report(y[known], probs[known], codes)
    if raw_probs is not None:
        out["all"]["ece_uncalibrated"] = expected_calibration_error(y[known], raw_probs[known])
    product = _indices(codes, PRODUCT_CODES)
    in_product = np.isin(y, product)
    out["product12"] = classification_report(y[in_product], probs[in_product], codes, eval_classes=product)
    sources = sorted({s.source for s in samples})
    src = np.array([s.source for s in samples])
    out["per_source"] = {}
    for source in sources:
        m = (src == source) & in_product
        if m.any():
            r = classification_report(y[m], probs[m], codes, eval_classes=product)
            out["per_source"][source] = {k: v for k, v in r.items() if k != "confusion_matrix"}
    ham = src == "ham"
    if ham.any():
        ham7 = _indices(codes, HAM_CODES)
        out["ham7"] = classification_report(y[ham], probs[ham], codes, eval_classes=ham7)
        hp, hs = lesion_level(probs[ham], [s for s, h in zip(samples, ham) if h])
        out["ham7_lesion_level"] = classification_report(_labels(hs, codes), hp, codes, eval_classes=ham7)
    out["by_group"] = report_by_group(probs, samples, codes, skin)
    return out


def abstention_report(probs: np.ndarray, y: np.ndarray, samples, codes: Sequence[str], min_confidence: float) -> dict:
    """How the uncertainty rule behaves on in-list photos and on DermNet "other" photos."""
    codes = list(codes)
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    confident = conf >= min_confidence
    product = _indices(codes, PRODUCT_CODES)
    in_list = np.isin(y, product)
    labels = np.array([s.label for s in samples])
    other = labels == OTHER_CODE
    report = {"min_confidence": float(min_confidence)}
    if in_list.any():
        report["in_list"] = {
            "n": int(in_list.sum()),
            "coverage": float(confident[in_list].mean()),
            "accuracy_when_confident": float((pred == y)[in_list & confident].mean()) if (in_list & confident).any() else None,
            "accuracy_all": float((pred == y)[in_list].mean()),
        }
    if other.any():
        pred_other = np.array([codes[p] == OTHER_CODE for p in pred])
        report["other_photos"] = {
            "n": int(other.sum()),
            # the failure the issue names: an unlisted condition presented as a confident listed one
            "confident_listed_class": float((confident & ~pred_other)[other].mean()),
            "uncertain": float((~confident)[other].mean()),
            "predicted_other": float(pred_other[other].mean()),
        }
    return report


def gate_report(serving_model, gate, mode: str, input_size, images: dict | None = None) -> dict:
    """Run the non-skin pictures through the exported model and the gate."""
    from .nonskin import nonskin_images
    from .preprocessing import prepare_batch

    images = images if images is not None else nonskin_images()
    names = list(images)
    batch = prepare_batch([images[n] for n in names], input_size, mode)
    outputs = serving_model(batch, training=False)
    embedding = np.asarray(outputs[1])
    distance = gate.distance(embedding)
    rejected = ~gate.is_skin(embedding, batch)
    return {
        "n": len(names),
        "rejected": int(rejected.sum()),
        "rejection_rate": float(rejected.mean()) if names else None,
        "threshold": float(gate.threshold),
        "per_image": {n: {"rejected": bool(r), "distance": round(float(d), 1)} for n, r, d in zip(names, rejected, distance)},
    }


# --------------------------------------------------------------------------- plots

def plot_confusion(cm, codes: Sequence[str], path: Path, title: str = "Confusion matrix (rows: true, normalised)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(codes), 1 + 0.55 * len(codes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(codes)), codes, rotation=45, ha="right")
    ax.set_yticks(range(len(codes)), codes)
    for i in range(len(codes)):
        for j in range(len(codes)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    axes[0].plot(epochs, history["loss"], label="train loss (weighted)")
    axes[0].plot(epochs, history["val_loss"], label="validation loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    axes[1].plot(epochs, history["accuracy"], label="train accuracy")
    axes[1].plot(epochs, history["val_accuracy"], label="validation accuracy")
    axes[1].plot(epochs, history["val_balanced_accuracy"], label="validation balanced accuracy")
    axes[1].set_xlabel("epoch")
    if history.get("finetune_from_epoch"):
        for ax in axes:  # head on frozen features before the line, fine-tuning after it
            ax.axvline(history["finetune_from_epoch"] + 0.5, color="grey", linestyle="--", linewidth=1)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- watermark check

def dermnet_logo_mask(samples, size=(320, 240), limit: int = 400, min_share: float = 0.3) -> np.ndarray:
    """Where the DermNet logo is: pixels that are near-white in at least ``min_share`` of the
    DermNet photos, inside the lower-left box. Used to paste a replica logo onto HAM photos."""
    from PIL import Image

    acc = np.zeros((size[1], size[0]))
    n = 0
    for s in [s for s in samples if s.watermark == "dermnet"][:limit]:
        img = Image.open(s.path).convert("RGB").resize(size)
        acc += np.asarray(img).min(axis=2) > 225
        n += 1
    mask = (acc / max(n, 1)) >= min_share
    box = np.zeros_like(mask)
    box[int(0.6 * size[1]) :, : int(0.6 * size[0])] = True
    return mask & box


def paste_logo(img, mask: np.ndarray):
    """Paint the logo mask in white onto the lower-left corner of a photo, scaled to its size."""
    from PIL import Image

    m = Image.fromarray((mask * 255).astype(np.uint8)).resize(img.size, Image.Resampling.NEAREST)
    out = img.copy()
    out.paste(Image.new("RGB", img.size, (255, 255, 255)), mask=m)
    return out


# --------------------------------------------------------------------------- the evaluate command

def _forward_images(classifier, images, batch_size: int):
    from .preprocessing import prepare_batch

    logits, embeddings, skin = [], [], []
    for i in range(0, len(images), batch_size):
        batch = prepare_batch(images[i : i + batch_size], classifier.input_size, classifier.preprocessing)
        lg, em = classifier.forward(batch)
        logits.append(lg)
        embeddings.append(em)
        if classifier.gate is not None:
            skin.append(classifier.gate.is_skin(em, batch))
    skin = np.concatenate(skin) if skin else np.ones(len(images), dtype=bool)
    return np.concatenate(logits), np.concatenate(embeddings), skin


def run_evaluation(model_dir, splits: dict, split: str = "test", out_dir: Path | None = None, batch_size: int = 64,
                   runtime: str | None = None, external: dict | None = None) -> dict:
    """Score an exported artifact on a held-out split, reading the image files.

    ``runtime`` as in ``Classifier.load``: by default the engine the site serves (the artifact's
    LiteRT choice), ``keras`` for the Keras model the training metrics describe."""
    from .data import load_training_image
    from .inference import Classifier, softmax

    started = time.time()
    classifier = Classifier.load(model_dir, runtime=runtime)
    codes = [c for c, _ in classifier.classes]
    samples = splits[split]
    size = classifier.input_size
    logits, skin, t_forward = forward_samples(classifier, samples, batch_size)
    probs = softmax(logits, classifier.temperature)
    raw = softmax(logits, 1.0)
    y = _labels(samples, codes)
    report = evaluate_probabilities(probs, raw, samples, codes, skin if classifier.gate is not None else None)
    report["abstention"] = abstention_report(probs, y, samples, codes, classifier.min_confidence)
    if classifier.gate is not None:
        report["gate_false_rejection"] = float(1.0 - skin.mean())
        src = np.array([s.source for s in samples])
        report["gate_false_rejection_per_source"] = {k: float(1.0 - skin[src == k].mean()) for k in sorted(set(src))}
        report["nonskin_gate"] = gate_report(classifier.model, classifier.gate, classifier.preprocessing, size)

    # Watermark check 1: paste a replica DermNet logo onto HAM photos; a model that learned
    # "logo => clinical class" would move probability to the DermNet-only classes.
    ham_idx = [i for i, s in enumerate(samples) if s.source == "ham"]
    if ham_idx and any(s.watermark == "dermnet" for v in splits.values() for s in v):
        mask = dermnet_logo_mask([s for v in splits.values() for s in v])
        pick = ham_idx[:: max(1, len(ham_idx) // 400)]
        logo_imgs = [paste_logo(load_training_image(samples[i], size), mask) for i in pick]
        lg, _, _ = _forward_images(classifier, logo_imgs, batch_size)
        p_logo = softmax(lg, classifier.temperature)
        p_clean = probs[pick]
        clinical = _indices(codes, ("ad", "acne", "psoriasis", "tinea", OTHER_CODE))
        report["watermark_check"] = {
            "ham_photos": len(pick),
            "top1_changed": float(np.mean(p_logo.argmax(1) != p_clean.argmax(1))),
            "mean_clinical_only_mass_clean": float(p_clean[:, clinical].sum(1).mean()),
            "mean_clinical_only_mass_with_logo": float(p_logo[:, clinical].sum(1).mean()),
        }
    # Watermark check 2: DermNet photos with the logo left in vs cropped away.
    derm_idx = [i for i, s in enumerate(samples) if s.source == "dermnet" and y[i] >= 0]
    if derm_idx:
        from .preprocessing import open_image

        uncropped = [open_image(samples[i].path, size) for i in derm_idx]
        lg, _, _ = _forward_images(classifier, uncropped, batch_size)
        p_unc = softmax(lg, classifier.temperature)
        yy = y[derm_idx]
        report.setdefault("watermark_check", {})
        report["watermark_check"].update(
            {
                "dermnet_photos": len(derm_idx),
                "dermnet_top1_cropped": float(np.mean(probs[derm_idx].argmax(1) == yy)),
                "dermnet_top1_logo_left_in": float(np.mean(p_unc.argmax(1) == yy)),
            }
        )
    if external:
        report["external"] = {name: external_report(classifier, items, batch_size) for name, items in external.items()}
    report["ms_per_image_forward"] = 1000.0 * t_forward / max(len(samples), 1)
    report["wall_s"] = round(time.time() - started, 1)
    report["model_version"] = classifier.version
    report["engine"] = {"runtime": classifier.runtime_name, "file": classifier.engine_file,
                        "test_time_flips": classifier.test_time_flips, "test_time_crop": classifier.test_time_crop}
    report["split"] = split
    report["summary"] = summary_of(report)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"report_{split}.json").write_text(json.dumps(report, indent=2, default=float))
        plot_confusion(report["all"]["confusion_matrix"], report["all"]["codes"], out_dir / f"confusion_{split}.png")
        if "ham7" in report:
            plot_confusion(report["ham7"]["confusion_matrix"], report["ham7"]["codes"], out_dir / f"confusion_{split}_ham7.png")
    return report


def melanoma_vs_nevus(probs: np.ndarray, skin: np.ndarray, samples, codes: Sequence[str],
                      malignancy_threshold: float | None) -> dict:
    """A melanoma-versus-nevus set (PH2) as the product sees it: the melanoma AUC of p(mel) and
    of the summed skin-cancer probability the triage uses, and, at the triage's threshold, how
    many melanomas reach the urgent tier (a photo the gate rejects never does) and how many nevi
    stay out of it. Plus the 7-class HAM report of the same photos (per-class recall)."""
    from .metrics import roc_auc
    from .thresholds import malignancy_scores

    codes = list(codes)
    y = _labels(samples, codes)
    labels = np.array([s.label for s in samples])
    mel, nv = labels == "mel", labels == "nv"
    both = mel | nv
    score = malignancy_scores(probs, codes)
    out = {
        "n": int(both.sum()), "melanomas": int(mel.sum()), "nevi": int(nv.sum()),
        "mel_auc": roc_auc(mel[both], probs[both, codes.index("mel")]),
        "malignancy_auc": roc_auc(mel[both], score[both]),
        "gate_false_rejection": float(1.0 - skin.mean()) if len(skin) else None,
        "ham7": {k: v for k, v in classification_report(y[both], probs[both], codes, _indices(codes, HAM_CODES)).items()
                 if k != "confusion_matrix"},
    }
    if malignancy_threshold is not None:
        urgent = (score >= malignancy_threshold) & skin
        out["at_triage_threshold"] = {
            "threshold": float(malignancy_threshold),
            "melanoma_sensitivity": float(urgent[mel].mean()) if mel.any() else None,
            "nevus_specificity": float((~urgent)[nv].mean()) if nv.any() else None,
        }
    return out


def forward_samples(classifier, samples, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, float]:
    """Logits and the gate's verdict for photos read from their files (watermark cropped),
    and the seconds spent in the network."""
    from .data import load_training_image

    logits, skin, seconds = [], [], 0.0
    for i in range(0, len(samples), 256):
        chunk = [load_training_image(s, classifier.input_size) for s in samples[i : i + 256]]
        t = time.time()
        lg, _, ok = _forward_images(classifier, chunk, batch_size)
        seconds += time.time() - t
        logits.append(lg)
        skin.append(ok)
    if not logits:
        return np.zeros((0, len(classifier.classes))), np.zeros(0, dtype=bool), 0.0
    return np.concatenate(logits), np.concatenate(skin), seconds


def external_report(classifier, samples, batch_size: int = 64) -> dict:
    """An external test set (never trained on, never used to choose anything)."""
    from .inference import softmax

    logits, skin, _ = forward_samples(classifier, samples, batch_size)
    probs = softmax(logits, classifier.temperature)
    threshold = (classifier.metadata.get("thresholds") or {}).get("malignancy")
    return melanoma_vs_nevus(probs, skin, samples, [c for c, _ in classifier.classes], threshold)


def summary_of(report: dict) -> dict:
    def pick(r):
        return {k: r.get(k) for k in ("n", "balanced_accuracy", "top1_accuracy", "top4_accuracy", "macro_auc", "ece", "ece_uncalibrated", "mel_auc", "mel_sensitivity_at_80_specificity") if k in r}

    out = {k: pick(report[k]) for k in ("all", "product12", "ham7", "ham7_lesion_level") if k in report}
    out["per_source"] = {k: pick(v) for k, v in report.get("per_source", {}).items()}
    for key in ("by_group", "abstention", "gate_false_rejection", "gate_false_rejection_per_source", "external",
                "watermark_check", "ms_per_image_forward", "wall_s"):
        if key in report:
            out[key] = report[key]
    if "nonskin_gate" in report:
        out["nonskin_gate"] = {k: report["nonskin_gate"][k] for k in ("n", "rejected", "rejection_rate")}
    return out
