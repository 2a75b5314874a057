"""Command line: ``python -m ml {extract,train,evaluate,export-tflite,predict} ...``.

    python -m ml train --ham DATA/ham10000 --dermnet DATA/dermnet --out ml/artifacts/effnetlite0-v2
    python -m ml evaluate --model ml/artifacts/effnetlite0-v2 --ham DATA/ham10000 --dermnet DATA/dermnet
    python -m ml predict [--model DIR] photo1.jpg photo2.png ...
    python -m ml export-tflite --ham DATA/ham10000 --dermnet DATA/dermnet   # LiteRT variants, serving choice

``extract`` runs only the (long, resumable) feature extraction that ``train``
starts with, so it can run in the background while other work goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .artifact import DEFAULT_MODEL_DIR
DEFAULT_CACHE = Path(__file__).resolve().parent / "cache"


def _limit_threads(threads: int | None) -> None:
    """Respect a shared machine: TensorFlow reads these before it starts."""
    if threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--ham", type=Path, help="HAM10000 folder (HAM10000_metadata.csv + images/)")
    g.add_argument("--dermnet", type=Path, help="DermNet folder (labels.csv + images/); its logo is cropped away")
    g.add_argument("--derm7pt", type=Path, help="derm7pt folder (labels.csv + images/), split by photo")
    g.add_argument("--fitz17k", type=Path, help="fitz17k folder (labels.csv + images/): clinical photos with skin types")
    g.add_argument("--csv", type=Path, action="append", default=[], help="extra CSV of path,label rows (repeatable)")
    g.add_argument("--label-column", default="label", help="label column of --csv files (default: label)")
    g.add_argument("--path-column", default="path", help="path column of --csv files (default: path)")
    g.add_argument("--group-column", default=None, help="column tying photos of one lesion/patient in --csv files")
    g.add_argument("--watermark", choices=["dermnet"], default=None, help="watermark to crop from --csv images")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--split", default="0.70,0.15,0.15", help="train,val,test fractions")


def _add_backbone_args(p: argparse.ArgumentParser) -> None:
    from .architectures import ARCHITECTURES

    p.add_argument("--arch", choices=ARCHITECTURES, default="efficientnet_lite0")
    p.add_argument(
        "--weights",
        default="imagenet",
        help='"imagenet", "none" (from scratch) or a local weights file (offline machines)',
    )
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="feature cache folder (git-ignored)")
    p.add_argument("--views", type=int, default=6, help="augmented views per training photo, besides the clean one")
    p.add_argument("--no-tap", action="store_true", help="do not cache the intermediate activation")
    p.add_argument("--tap-layer", default=None, help="layer whose activation is cached (default: the arch's choice)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (extract: 64; train: per recipe)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")


def load_splits(args) -> dict:
    from .data import load_csv, load_derm7pt, load_dermnet, load_fitz17k, load_ham, split_samples

    samples = []
    if args.ham:
        samples += load_ham(args.ham)
    if args.dermnet:
        samples += load_dermnet(args.dermnet)
    if getattr(args, "derm7pt", None):
        samples += load_derm7pt(args.derm7pt)
    if getattr(args, "fitz17k", None):
        samples += load_fitz17k(args.fitz17k)
    for csv_path in args.csv:
        samples += load_csv(
            csv_path,
            label_column=args.label_column,
            path_column=args.path_column,
            group_column=args.group_column,
            watermark=args.watermark,
        )
    if not samples:
        raise SystemExit("no data: pass --ham, --dermnet, --derm7pt, --fitz17k and/or --csv")
    fractions = tuple(float(x) for x in args.split.split(","))
    return split_samples(samples, fractions, seed=args.seed)


def cmd_extract(args) -> int:
    from .training import extract_all

    splits = load_splits(args)
    extract_all(args, splits)
    return 0


#: Defaults that differ between the recipes (None on the command line: not given).
RECIPE_DEFAULTS = {
    "cached": {"epochs": 40, "lr": 1e-3, "dropout": 0.5, "batch_size": 64},
    "whole": {"epochs": 15, "lr": 3e-4, "dropout": 0.3, "batch_size": 32},
}


def cmd_train(args) -> int:
    from .training import run_training, run_whole_network

    for key, value in RECIPE_DEFAULTS[args.recipe].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    splits = load_splits(args)
    if args.recipe == "whole":
        run_whole_network(args, splits)
    else:
        run_training(args, splits)
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import run_evaluation

    from .data import load_ph2

    splits = load_splits(args)
    if args.eval_split == "all":  # every photo of the given sets: a source the model never saw
        splits["all"] = [s for name in ("train", "val", "test") for s in splits[name]]
    external = {"ph2": load_ph2(args.ph2)} if args.ph2 else None
    report = run_evaluation(args.model, splits, split=args.eval_split, out_dir=args.out, batch_size=args.batch_size,
                            runtime=args.runtime, external=external)
    print(json.dumps({"engine": report["engine"], **report["summary"]}, indent=2))
    return 0


def cmd_export_tflite(args) -> int:
    from .export import export_litert

    _limit_threads(args.threads)
    splits = load_splits(args)
    result = export_litert(
        args.model, splits[args.eval_split], calibration_samples=splits["train"],
        variants=args.variants.split(","), max_drop=args.max_drop, keep=[k for k in args.keep.split(",") if k],
        threads=args.threads, calibration_photos=args.calibration_photos, split=args.eval_split,
        timing_repeats=args.timing_repeats,
    )
    print(json.dumps(result["serving"], indent=2))
    return 0


def cmd_thresholds(args) -> int:
    from .inference import Classifier
    from .thresholds import malignancy_report, write_threshold

    splits = load_splits(args)
    report = malignancy_report(Classifier.load(args.model), splits, target_sensitivity=args.target_sensitivity,
                               cache_dir=args.scores_cache, positive=args.positive, rule=args.rule)
    if args.write:
        write_threshold(args.model, report)
    print(json.dumps(report, indent=2))
    return 0


def cmd_kind_probe(args) -> int:
    from .kind_training import kind_probe_report

    report = kind_probe_report(args.model, load_splits(args), cache_dir=args.scores_cache, write=args.write)
    print(json.dumps(report, indent=2))
    return 0


def cmd_combine(args) -> int:
    from . import ensemble, soup
    from .members import MemberError, run_combined

    if args.shares is not None and len(args.shares) != len(args.members):
        raise SystemExit(f"--shares needs one number per member ({len(args.members)}), not {len(args.shares)}")
    combine = {"soup": soup.mix, "ensemble": ensemble.stack}[args.command]
    try:
        run_combined(args, load_splits(args), combine, args.command)
    except MemberError as exc:
        raise SystemExit(f"{args.command}: {exc}") from exc
    return 0


def cmd_tta(args) -> int:
    from .tta import choose_flips

    splits = load_splits(args)
    choices = tuple(int(v) for v in args.views.split(","))
    crops = tuple(float(v) for v in args.crops.split(",") if v)
    report = choose_flips(args.model, splits["val"], choices=choices, min_gain=args.min_gain, write=args.write,
                          crops=crops, max_passes=args.max_passes)
    print(json.dumps(report, indent=2))
    return 0


def cmd_fusion(args) -> int:
    from .fusion import fusion_experiment
    from .inference import Classifier

    splits = load_splits(args)
    report = fusion_experiment(Classifier.load(args.model), splits, cache_dir=args.scores_cache)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_predict(args) -> int:
    from .inference import Classifier

    classifier = Classifier.load(args.model)
    for path, result in classifier.predict_paths(args.files, batch_size=args.batch_size):
        record = {
            "file": path,
            "status": result.status,
            "reason": result.reason,
            "model_version": result.model_version,
            "kind": result.kind,
            "predictions": [
                {"code": p.code, "label": p.label, "probability": p.probability} for p in result.predictions
            ],
        }
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="cache frozen-backbone features (resumable)")
    _add_data_args(p)
    _add_backbone_args(p)
    p.add_argument("--tap-only", action="store_true", help="run the network only up to --tap-layer and cache that")
    p.set_defaults(func=cmd_extract, batch_size=64)

    p = sub.add_parser("train", help="train, calibrate and export a model artifact")
    _add_data_args(p)
    _add_backbone_args(p)
    p.add_argument("--out", type=Path, required=True, help="artifact folder to write, e.g. ml/artifacts/effnetlite0-v2")
    p.add_argument("--version", default=None, help="model version string (default: the --out folder name)")
    p.add_argument("--other", choices=["class", "gate"], default="class",
                   help='"class": train an "other" class; "gate": drop those photos from training, rely on abstention')
    p.add_argument("--recipe", choices=["cached", "whole"], default="cached",
                   help='"cached": frozen features, a head, then the last stages on cached activations; '
                        '"whole": every layer trains on views augmented on the fly (resumable)')
    p.add_argument("--epochs", type=int, default=None, help="cached: head epochs (40); whole: epochs (15)")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--dropout", type=float, default=None, help="cached: 0.5; whole: 0.3")
    p.add_argument("--lr", type=float, default=None, help="cached: head (1e-3); whole: peak learning rate (3e-4)")
    w = p.add_argument_group("whole-network recipe (--recipe whole)")
    w.add_argument("--colour-constancy", choices=["sog6", "none"], default="sog6",
                   help="Shades-of-Gray (p=6) colour normalisation in the shared preprocessing (default)")
    w.add_argument("--batchnorm", choices=["train", "frozen"], default="train",
                   help="BatchNorm follows the skin photos (train) or keeps ImageNet's statistics (frozen)")
    w.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="compute precision while training (the artifact is float32 either way)")
    w.add_argument("--warmup-epochs", type=float, default=1.0)
    w.add_argument("--weight-decay", type=float, default=1e-5)
    w.add_argument("--label-smoothing", type=float, default=0.0)
    w.add_argument("--ema", type=float, default=0.0,
                   help="validate and ship a moving average of the weights with this momentum per step (0: off)")
    w.add_argument("--train-seed", type=int, default=None,
                   help="seed of the draws, augmentation and head initialisation (default: --seed, which also "
                        "fixes the split): a second member for an ensemble trains on the same split")
    w.add_argument("--sampling-power", type=float, default=0.5, help="draw photos with weight n_class ** -power")
    w.add_argument("--sampling-strata", choices=["class", "source_class"], default="class",
                   help="what the sampling weight balances: the class, or the class within each source "
                        "(so a small clinical set is drawn as often as its class share there asks)")
    w.add_argument("--loss-power", type=float, default=0.5, help="weigh the loss by n_class ** -power")
    w.add_argument("--photos-per-epoch", type=int, default=0, help="draws per epoch (0: the number of training photos)")
    w.add_argument("--checkpoint", type=Path, default=None,
                   help="folder for the per-epoch checkpoint (default: RUNS/VERSION/checkpoint)")
    w.add_argument("--resume", action="store_true", help="go on after the checkpoint's last finished epoch")
    w.add_argument("--epochs-now", type=int, default=None,
                   help="stop after this many epochs in this call (a working session's time); resume later")
    w.add_argument("--finish-now", action="store_true",
                   help="build the artifact from the best epoch so far even if epochs remain")
    p.add_argument("--class-weight-power", type=float, default=1.0,
                   help="class weights (n / (C n_c)) ** power: 1 fully balanced, 0.5 softer, 0 none")
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="then fine-tune the layers after the cached tap layer for this many epochs (0: frozen backbone)")
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--finetune-patience", type=int, default=4)
    p.add_argument("--finetune-batchnorm", action="store_true",
                   help="let the fine-tuned layers' BatchNorm learn skin-photo statistics (default: ImageNet's, frozen)")
    p.add_argument("--tap-cache", type=Path, default=None,
                   help="cache made by `extract --tap-layer L --tap-only`: fine-tune everything after layer L")
    p.add_argument("--finetune-views", type=int, default=0, help="use only the first N cached views for fine-tuning (0: all)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="artifact folder to go on from: its head and fine-tuned layers are the start "
                        "(cached recipe: needs --tap-cache; whole: a new warm-up and cosine cycle from its weights)")
    p.add_argument("--target-accuracy", type=float, default=0.80,
                   help="validation accuracy required of confident answers; below the matching threshold -> uncertain")
    p.add_argument("--max-false-rejection", type=float, default=0.015,
                   help="share of validation skin photos the not-skin gate may reject (1.5 %%: a margin under "
                        "the 2 %% target for new photos)")
    p.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "runs", help="logs and plots")
    p.add_argument("--max-per-split", type=int, default=None, help=argparse.SUPPRESS)  # tests only
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate an artifact on a held-out split, from the image files")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--eval-split", choices=["val", "test", "all"], default="test",
                   help="all: every photo of the given sets (a source left out of training)")
    p.add_argument("--ph2", type=Path, default=None,
                   help="PH2 folder (labels.csv + images/): an external melanoma-vs-nevus test, never trained on")
    p.add_argument("--runtime", choices=["auto", "keras", "litert"], default=None,
                   help="engine to score: auto (default, or ML_RUNTIME) is the one the site serves; "
                        "keras is the model the training metrics describe")
    p.add_argument("--out", type=Path, default=None, help="folder for the report JSON and PNGs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-tflite", help="LiteRT exports (fp32/fp16/dynamic/int8); serve the fastest within --max-drop")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--eval-split", choices=["val", "test"], default="test")
    p.add_argument("--max-drop", type=float, default=0.005, help="largest balanced-accuracy loss accepted")
    p.add_argument("--variants", default="fp32,fp16,dynamic,int8,int8_float_head", help="comma-separated LiteRT variants to try")
    p.add_argument("--keep", default="", help="variants to keep in the artifact besides the chosen one")
    p.add_argument("--calibration-photos", type=int, default=300, help="training photos that calibrate int8")
    p.add_argument("--timing-repeats", type=int, default=30, help="timed calls per engine (median taken)")
    p.add_argument("--threads", type=int, default=1, help="inference threads while timing (1: as a worker serves)")
    p.set_defaults(func=cmd_export_tflite)

    p = sub.add_parser("thresholds", help="choose the triage's malignancy threshold on validation, report val and test")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--target-sensitivity", type=float, default=0.95,
                   help="share of the --positive photos the urgent tier must catch")
    p.add_argument("--positive", choices=["malignant", "melanoma"], default="malignant",
                   help="photos the target counts: all four malignant classes (default) or melanomas only (v7)")
    p.add_argument("--rule", choices=["every_source", "per_kind", "pooled"], default="every_source",
                   help="every_source: the target holds on each source of validation on its own (default); "
                        "per_kind: the same within each kind of photo, as the kind probe reads it, one threshold "
                        "per kind (needs kind-probe --write first); pooled: over all validation photos at once (v7)")
    p.add_argument("--write", action="store_true", help="record it in the artifact's metadata.json")
    p.add_argument("--scores-cache", type=Path, default=DEFAULT_CACHE / "scores",
                   help="keep the per-photo logits here for reuse (git-ignored)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_thresholds)

    p = sub.add_parser("kind-probe", help="fit the dermoscopic-or-clinical probe on the training embeddings")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--write", action="store_true", help="save kind.npz in the artifact and record it in metadata.json")
    p.add_argument("--scores-cache", type=Path, default=DEFAULT_CACHE / "scores")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_kind_probe)

    for name, what in (("soup", "average the weights of whole-network artifacts of one recipe and seed into one network"),
                       ("ensemble", "one model that averages the logits of whole-network artifacts (a pass per member)")):
        p = sub.add_parser(name, help=what)
        _add_data_args(p)
        p.add_argument("--members", type=Path, nargs="+", required=True, help="artifact folders (2 or more)")
        p.add_argument("--shares", type=float, nargs="+", default=None, help="weight of each member (default: equal)")
        p.add_argument("--out", type=Path, required=True, help="artifact folder to write")
        p.add_argument("--version", default=None, help="model version string (default: the --out folder name)")
        p.add_argument("--target-accuracy", type=float, default=0.80,
                       help="accuracy the confident answers must reach on validation (uncertainty threshold)")
        p.add_argument("--max-false-rejection", type=float, default=0.015,
                       help="share of validation skin photos the not-skin gate may reject, on every source")
        p.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "runs", help="logs and plots")
        p.add_argument("--threads", type=int, default=2)
        p.set_defaults(func=cmd_combine)

    p = sub.add_parser("tta", help="measure test-time flips (1, 2, 4 views) on validation; --write serves the best")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--views", default="1,2,4", help="view counts to compare (1 must be among them)")
    p.add_argument("--min-gain", type=float, default=0.005, help="balanced accuracy more views must add over one")
    p.add_argument("--crops", default="", help="centre crops to try as one more view, e.g. 0.5,0.7 (share of the side kept)")
    p.add_argument("--max-passes", type=int, default=None,
                   help="network passes a photo may cost (flips + crop); the serving budget")
    p.add_argument("--write", action="store_true", help="record the choice, its temperature and uncertainty threshold")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_tta)

    p = sub.add_parser("fusion", help="measure fusing age, sex and site with the image model (validation CV, test)")
    _add_data_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--scores-cache", type=Path, default=DEFAULT_CACHE / "scores")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_fusion)

    p = sub.add_parser("predict", help="classify photos; one JSON object per line")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _limit_threads(getattr(args, "threads", None))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)
