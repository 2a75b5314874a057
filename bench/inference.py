"""Serving speed of the shipped model, in one run: writes docs/PERFORMANCE.md and docs/performance.json.

    nice -n 10 .venv/bin/python -m bench.inference --ham DATA/ham10000 --dermnet DATA/dermnet   # everything (~15-30 min)
    .venv/bin/python -m bench.inference --quick --model DIR --out /tmp/perf   # smoke run (tests)
    .venv/bin/python -m bench.inference --sections preprocess,startup      # re-measure some sections;
                                                                           # the others are kept from the JSON

What it measures, each engine in a fresh subprocess (so memory and thread settings do not leak):

* ``engines``: milliseconds per photo at batch 1 and 32 (median of N calls after a warm-up; a photo is
  every test-time view the artifact is served with, ``ml/tta.py``) for Keras
  ``model.predict``, Keras through one traced ``tf.function`` (what ``KerasRuntime`` does) and the
  LiteRT fp32 / fp16 / dynamic-range / int8 exports, one inference thread each; resident memory
  after loading and peak (``VmHWM``) after the batch-32 calls. Exports the artifact does not ship are
  converted into ``var/bench-cache/`` first (int8 needs the training photos to calibrate).
* ``startup``: worker start-to-ready, from spawning a Python process to its first answer (import,
  checksum-verified load, one inference on a real photo), for each engine, with and without
  Django set up as the Celery worker has it; resident memory when ready and after 20 more photos.
* ``preprocess``: decoding + preparing a 12-megapixel phone-like JPEG, as stored by the upload
  sanitiser, with the shared ``open_image`` (Pillow draft mode: JPEG decoded at 1/8 scale) and
  without draft mode.
* ``threads``: photos per second for N processes x T inference threads on this machine, model only
  and end to end (decode the 12-MP photo + classify), as the Celery prefork pool would run.
* ``draft_accuracy``: the test split's photos upscaled to 12 MP and re-encoded as JPEG, classified
  by the serving engine after decoding with and without draft mode: balanced accuracy of each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ml.artifact import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = DEFAULT_MODEL_DIR
CACHE = ROOT / "var" / "bench-cache"
SECTIONS = ("engines", "startup", "preprocess", "threads", "draft_accuracy")
LITERT_VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int8_float_head")
TARGETS = {  # issue 6: on this 2-core machine
    "model_ms_per_image": 10.0,
    "start_to_ready_s": 1.0,
    "rss_mb": 150.0,
    "preprocess_12mp_ms": 45.0,
}
PHOTO_SIZE = (4000, 3000)  # 12 megapixels


# --------------------------------------------------------------------------- small helpers


def rss_mb() -> dict:
    """Resident and peak resident memory of this process, from /proc (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def thread_env(threads: int) -> dict:
    """What a worker process is started with: one knob for every library's thread pool."""
    env = dict(os.environ)
    env.update({
        "ML_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT),
    })
    return env


def run_child(mode: str, args: dict, threads: int = 1, extra_env: dict | None = None, timeout: float = 900) -> dict:
    env = thread_env(threads)
    env.update(extra_env or {})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(args)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_line_at = None
    lines = []
    for line in proc.stdout:
        if first_line_at is None and line.startswith("READY"):
            first_line_at = time.perf_counter() - t
        lines.append(line)
    proc.wait(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} {args} failed:\n{proc.stderr.read()[-3000:]}")
    result = json.loads([ln for ln in lines if ln.startswith("{")][-1])
    if first_line_at is not None:
        result["start_to_ready_s"] = first_line_at
    return result


def make_phone_photo(base=None, size=PHOTO_SIZE, quality: int = 95, noise: int = 6, seed: int = 0) -> bytes:
    """A 12-MP JPEG as a phone writes it: a real skin photo upscaled, with sensor-like noise (so
    the file has a phone photo's entropy), quality 95 and EXIF orientation 6 (portrait)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    if base is None:  # no photo at hand: skin tone with a darker spot
        h, w = 300, 400
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.empty((h, w, 3), np.float32)
        arr[:] = (205, 160, 130)
        arr[((xx - 200) ** 2 + (yy - 150) ** 2) < 60 ** 2] = (110, 70, 50)
        base = Image.fromarray(arr.astype(np.uint8))
    big = np.asarray(base.convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    big = big + rng.integers(-noise, noise + 1, big.shape, dtype=np.int16)
    img = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def stored_photo(phone_jpeg: bytes) -> tuple[bytes, str]:
    """What the worker actually decodes: the upload after the site's sanitiser (rotated, metadata
    stripped, re-encoded; diagnosis/images.py), at the default upload limits."""
    try:
        from diagnosis.images import sanitize_upload
    except ImportError:  # ml-only checkout
        return phone_jpeg, "the phone JPEG itself (diagnosis.images not importable)"
    clean = sanitize_upload(io.BytesIO(phone_jpeg), max_bytes=20 * 1024 * 1024, max_pixels=64_000_000, max_side=4096)
    return clean.content, "the phone JPEG after the upload sanitiser (diagnosis/images.py: EXIF rotation applied, metadata stripped, re-encoded)"


def load_meta(model: Path) -> dict:
    from ml.artifact import read_metadata

    return read_metadata(model, verify=True)


# --------------------------------------------------------------------------- children (fresh processes)


def child_engine(a: dict) -> dict:
    """Time one engine at batch 1 and 32 photos (each photo in as many views as the artifact is
    served with); memory after load and at peak."""
    before = rss_mb()
    t = time.perf_counter()
    n_classes = a["n_classes"]
    if a["engine"] == "keras_predict":
        import keras

        model = keras.saving.load_model(a["path"], compile=False)
        call = lambda x: model.predict(x, verbose=0)  # noqa: E731
    elif a["engine"] == "keras_function":
        from ml.runtime import KerasRuntime

        call = KerasRuntime(Path(a["path"]), a["threads"])
    else:
        from ml.runtime import LiteRTRuntime

        call = LiteRTRuntime(Path(a["path"]), n_classes, a["threads"], a.get("outputs"))
    load_s = time.perf_counter() - t
    from ml.tta import with_flips

    call = with_flips(call, a.get("flips", 1), a.get("crop"))  # a photo costs every view it is served with
    rng = np.random.default_rng(0)
    size = a["input_size"]
    b32 = rng.uniform(-1, 1, (32, size[0], size[1], 3)).astype(np.float32)
    b1 = b32[:1].copy()
    ms1 = median_ms(lambda: call(b1), a["repeats_b1"], warmup=2)
    after_b1 = rss_mb()
    ms32 = median_ms(lambda: call(b32), a["repeats_b32"], warmup=1) / 32
    return {"load_s": load_s, "ms_per_image_b1": ms1, "ms_per_image_b32": ms32,
            "rss_before_load_mb": before.get("rss_mb"), "rss_after_batch1_mb": after_b1.get("rss_mb"),
            "peak_rss_mb": rss_mb().get("peak_rss_mb")}


def child_startup(a: dict) -> dict:
    """A worker's life until ready: import, load (checksums), first photo; then 20 more photos."""
    t0 = time.perf_counter()
    if a.get("django"):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skinsite.settings")
        import django

        django.setup()
        from diagnosis.classifier import get_classifier

        import_s = time.perf_counter() - t0
        clf = get_classifier()
    else:
        from ml.inference import Classifier

        import_s = time.perf_counter() - t0
        clf = Classifier.load(a["model"], runtime=a["runtime"])
    load_s = time.perf_counter() - t0 - import_s
    from ml.preprocessing import open_image

    photo = Path(a["photo"]).read_bytes()
    result = clf.predict([open_image(io.BytesIO(photo), clf.input_size)])[0]
    ready_s = time.perf_counter() - t0
    print("READY", flush=True)
    ready = rss_mb()
    for _ in range(20):
        clf.predict([open_image(io.BytesIO(photo), clf.input_size)])
    steady = rss_mb()
    heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")})
    return {"runtime": clf.runtime_name, "status": result.status, "import_s": import_s, "load_s": load_s,
            "in_process_ready_s": ready_s, "rss_ready_mb": ready.get("rss_mb"),
            "rss_after_21_photos_mb": steady.get("rss_mb"), "peak_rss_mb": steady.get("peak_rss_mb"),
            "tensorflow_imported": bool(heavy)}


def child_throughput(a: dict) -> dict:
    """Classify photos in a loop until the shared deadline; count them."""
    from ml.inference import Classifier
    from ml.preprocessing import open_image, prepare_batch

    clf = Classifier.load(a["model"], runtime=a["runtime"])
    photo = Path(a["photo"]).read_bytes()
    img = open_image(io.BytesIO(photo), clf.input_size)
    batch = prepare_batch([img], clf.input_size, clf.preprocessing)
    for _ in range(3):
        clf.forward(batch)
    while time.time() < a["start_at"]:
        time.sleep(0.001)
    n = 0
    end = a["start_at"] + a["seconds"]
    while time.time() < end:
        if a["end_to_end"]:
            clf.predict([open_image(io.BytesIO(photo), clf.input_size)])
        else:
            clf.forward(batch)
        n += 1
    return {"photos": n}


CHILDREN = {"engine": child_engine, "startup": child_startup, "throughput": child_throughput}


# --------------------------------------------------------------------------- sections (parent)


def machine() -> dict:
    from bench.machine import cpu_model, memory_gib

    cpu = cpu_model() or "unknown"
    mem = memory_gib()
    mem = round(mem, 1) if mem is not None else None
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "pillow", "numpy", "django", "celery"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "ram_gb": mem, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "versions": versions,
            "load_average_start": list(os.getloadavg())}


def variant_files(model: Path, meta: dict, data: dict | None, quick: bool, only=None) -> dict:
    """Path of each LiteRT variant: the artifact's own, else a conversion cached in var/bench-cache."""
    from ml.export import VARIANT_FILES, convert

    out = {}
    cache = CACHE / f"{meta['version']}-{meta['files'].get(meta.get('model_file', 'model.keras'), 'x')[:12]}"
    representative = None
    for name in LITERT_VARIANTS:
        if only and f"litert_{name}" not in only:
            continue
        shipped = model / VARIANT_FILES[name]
        cached = cache / VARIANT_FILES[name]
        if shipped.is_file():
            out[name] = {"path": str(shipped), "source": "artifact"}
            continue
        if cached.is_file():
            out[name] = {"path": str(cached), "source": "converted for the benchmark"}
            continue
        if name.startswith("int8"):
            if data is None:
                out[name] = {"skipped": "no training photos to calibrate int8 (pass --ham/--dermnet)"}
                continue
            if representative is None:
                from ml.export import calibration_batch

                representative = calibration_batch(data["train"], meta["input_size"], meta["preprocessing"],
                                                   20 if quick else 300)
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(convert(model / meta.get("model_file", "model.keras"), name,
                                   representative if name.startswith("int8") else None))
        out[name] = {"path": str(cached), "source": "converted for the benchmark"}
    return out


def section_engines(model: Path, meta: dict, files: dict, quick: bool, threads: int, only=None) -> dict:
    from ml.tta import crop_of, views_of

    common = {"n_classes": len(meta["classes"]), "input_size": meta["input_size"], "threads": threads,
              "flips": views_of(meta), "crop": crop_of(meta),
              "repeats_b1": 5 if quick else 100, "repeats_b32": 2 if quick else 10}
    keras_path = str(model / meta.get("model_file", "model.keras"))
    runs = {"keras_predict": {"engine": "keras_predict", "path": keras_path},
            "keras_function": {"engine": "keras_function", "path": keras_path}}
    variants = (meta.get("tflite") or {}).get("variants") or {}
    for name, f in files.items():
        if "path" in f:
            runs[f"litert_{name}"] = {"engine": "litert", "path": f["path"],
                                     "outputs": (variants.get(name) or {}).get("outputs")}
    out = {}
    for name, spec in runs.items():
        if only and name not in only:
            continue
        print(f"  engine {name} ...", file=sys.stderr, flush=True)
        r = run_child("engine", {**common, **spec}, threads)
        r["file_mb"] = Path(spec["path"]).stat().st_size / 1e6
        out[name] = r
    for name, f in files.items():
        if "skipped" in f and (not only or f"litert_{name}" in only):
            out[f"litert_{name}"] = {"skipped": f["skipped"]}
    return out


def section_startup(model: Path, photo: Path, quick: bool, runtimes=("litert", "keras")) -> dict:
    out = {}
    repeats = 1 if quick else 3
    for runtime in runtimes:
        for django in (False, True):
            key = f"{runtime}{'_django' if django else ''}"
            print(f"  startup {key} ...", file=sys.stderr, flush=True)
            runs = []
            for _ in range(repeats):
                env = {"ML_MODEL_DIR": str(model), "ML_RUNTIME": runtime} if django else {}
                try:
                    runs.append(run_child("startup", {"model": str(model), "runtime": runtime, "photo": str(photo),
                                                      "django": django}, 1, env))
                except RuntimeError as exc:
                    if runtime == "litert":  # an artifact without any LiteRT export
                        out[key] = {"skipped": str(exc).splitlines()[-1]}
                        break
                    raise
            if runs:
                best = sorted(runs, key=lambda r: r["start_to_ready_s"])[len(runs) // 2]  # the median run
                best["start_to_ready_s_runs"] = [round(r["start_to_ready_s"], 3) for r in runs]
                out[key] = best
    return out


def section_preprocess(photo: bytes, input_size, mode: str, quick: bool) -> dict:
    from PIL import Image

    from ml.preprocessing import open_image, prepare_batch

    repeats = 3 if quick else 30

    def run(draft: bool):
        img = open_image(io.BytesIO(photo), input_size if draft else None)
        return prepare_batch([img], input_size, mode)

    with Image.open(io.BytesIO(photo)) as im:
        size = im.size
    drafted = open_image(io.BytesIO(photo), input_size)
    return {"photo_pixels": size, "photo_megapixels": size[0] * size[1] / 1e6, "photo_mb": len(photo) / 1e6,
            "draft_decoded_size": list(drafted.size),
            "draft_ms": median_ms(lambda: run(True), repeats), "no_draft_ms": median_ms(lambda: run(False), repeats),
            "repeats": repeats}


def section_threads(model: Path, photo: Path, runtime: str, quick: bool) -> dict:
    """Photos per second for each processes x threads configuration; the configurations take turns
    over several rounds and the median round counts, so a burst of someone else's load on the
    shared machine does not decide the comparison."""
    seconds, rounds = (1.0, 1) if quick else (5.0, 3)
    configs = [(1, 1), (2, 1)] if quick else [(1, 1), (1, 2), (2, 1), (2, 2)]
    rates: dict = {}
    for _ in range(rounds):
        for end_to_end in (False, True):
            for procs, threads in configs:
                start_at = time.time() + (10 if runtime == "keras" else 2) + (0 if quick else 1)
                args = {"model": str(model), "runtime": runtime, "photo": str(photo), "start_at": start_at,
                        "seconds": seconds, "end_to_end": end_to_end}
                cmds = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", "throughput",
                                          json.dumps(args)], cwd=ROOT, env=thread_env(threads), stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True) for _ in range(procs)]
                counts = []
                for p in cmds:
                    stdout, _ = p.communicate(timeout=300)
                    counts.append(json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])["photos"])
                key = ("end_to_end" if end_to_end else "model_only", f"{procs}x{threads}")
                rates.setdefault(key, []).append(sum(counts) / seconds)
                print(f"  threads {key[0]} {key[1]}: {sum(counts) / seconds:.1f}/s", file=sys.stderr, flush=True)
    out = {"runtime": runtime, "seconds": seconds, "rounds": rounds, "model_only": {}, "end_to_end": {}}
    for (kind, key), values in rates.items():
        procs, threads = (int(x) for x in key.split("x"))
        out[kind][key] = {"processes": procs, "threads": threads, "photos_per_s": statistics.median(values),
                          "rounds_photos_per_s": [round(v, 1) for v in values]}
    return out


def section_draft_accuracy(model: Path, runtime: str, samples, quick: bool) -> dict:
    """Test photos upscaled to 12 MP and JPEG-encoded, then decoded with and without draft mode."""
    from PIL import Image

    from ml.data import crop_watermark
    from ml.export import score
    from ml.inference import Classifier
    from ml.preprocessing import normalize, open_image, resize

    clf = Classifier.load(model, runtime=runtime)
    size = clf.input_size
    long_side = 800 if quick else max(PHOTO_SIZE)
    pix = {True: [], False: []}
    t0 = time.time()
    for i, s in enumerate(samples):
        with Image.open(s.path) as im:
            im = im.convert("RGB")
            scale = long_side / max(im.size)
            big = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        for draft in (True, False):
            buf.seek(0)
            img = crop_watermark(open_image(buf, size if draft else None), s.watermark)
            pix[draft].append(resize(img, size))
        if i % 200 == 0:
            print(f"  draft accuracy {i}/{len(samples)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    codes = [c for c, _ in clf.classes]
    out = {"runtime": clf.runtime_name, "file": getattr(clf.runtime, "path", Path("model.keras")).name,
           "photos": len(samples), "long_side_px": long_side, "jpeg_quality": 90}
    preds = {}
    for draft in (True, False):
        x = normalize(np.stack(pix[draft]), clf.preprocessing)
        logits, emb = [], []
        for j in range(0, len(x), 32):
            lg, em = clf.forward(x[j : j + 32])
            logits.append(lg)
            emb.append(em)
        logits, emb = np.concatenate(logits), np.concatenate(emb)
        key = "draft" if draft else "no_draft"
        out[key] = score(logits, emb, samples, codes, clf.temperature, clf.gate, x)
        preds[key] = logits.argmax(1)
    out["balanced_accuracy_drop"] = out["no_draft"]["balanced_accuracy"] - out["draft"]["balanced_accuracy"]
    out["top1_agreement"] = float(np.mean(preds["draft"] == preds["no_draft"]))
    out["within_half_point"] = bool(out["balanced_accuracy_drop"] <= 0.005)
    return out


# --------------------------------------------------------------------------- report


def _fmt(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def targets_table(res: dict) -> list[dict]:
    serving = res.get("serving") or {}
    runtime = serving.get("runtime", "keras")
    engine_key = f"litert_{serving.get('variant')}" if runtime == "litert" else "keras_function"
    eng = (res.get("engines") or {}).get(engine_key) or {}
    st = res.get("startup") or {}
    ml_start, dj_start = st.get(runtime) or {}, st.get(f"{runtime}_django") or {}
    pre = res.get("preprocess") or {}
    rows = [
        ("Model time per photo (batch 1, 1 thread, every test-time view)", "ms", TARGETS["model_ms_per_image"],
         eng.get("ms_per_image_b1"), f"{engine_key}, {res.get('test_time_flips', 1)} view(s) per photo"),
        ("Worker process start to ready: fresh Python, import ml, load, first photo", "s", TARGETS["start_to_ready_s"],
         ml_start.get("start_to_ready_s"), f"{runtime}; what a prefork child does after the fork, plus the "
         "interpreter start it does not pay"),
        ("… the same with Django set up first (a worker started on its own)", "s", TARGETS["start_to_ready_s"],
         dj_start.get("start_to_ready_s"), f"{runtime}; in a prefork pool the parent pays this once, before forking"),
        ("Resident memory per worker process (peak, with Django)", "MB", TARGETS["rss_mb"], dj_start.get("peak_rss_mb"),
         f"{runtime}, after 21 photos; ml alone: {_fmt(ml_start.get('peak_rss_mb'), 0)} MB"),
        ("Preprocess a 12-MP JPEG (decode + prepare)", "ms", TARGETS["preprocess_12mp_ms"], pre.get("draft_ms"),
         f"draft mode; without: {_fmt(pre.get('no_draft_ms'))} ms"),
    ]
    return [{"target": t, "unit": u, "limit": lim, "measured": m,
             "met": None if m is None else bool(m <= lim), "note": note} for t, u, lim, m, note in rows]


def write_report(res: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    res["targets"] = targets_table(res)
    (out_dir / "performance.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (out_dir / "PERFORMANCE.md").write_text(render(res, out_dir))


def _when(res: dict, section: str) -> str:
    """A note for a section kept from an earlier (partial) run of the benchmark."""
    at = (res.get(section) or {}).get("measured_at")
    return f" *(Measured by an earlier run of the same command, {at}.)*" if at and at != res.get("measured_at") else ""


def render(res: dict, out_dir: Path | None = None) -> str:
    m = res["machine"]
    serving = res.get("serving") or {}
    tfl = res.get("tflite") or {}
    L = []
    L.append("# Serving performance\n")
    L.append(f"Measured by `bench/inference.py` ({res.get('command', 'python -m bench.inference')}) on "
             f"{res.get('measured_at', '?')} for model `{res.get('model_version')}`. Regenerate with the same command; "
             "every number below comes from that run unless its section says otherwise (`docs/performance.json` has them all).\n")
    L.append("## Machine\n")
    v = m.get("versions", {})
    L.append(f"- CPU: {m['cpu']}, {m['cores']} cores available to the process; RAM {m['ram_gb']} GB; {m['os']}, Python {m['python']}")
    L.append("- Libraries: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    la0, la1 = m.get("load_average_start"), m.get("load_average_end")
    # the start load only: the benchmark's own processes raise the load by the end
    busy = (la0 or [0])[0] > 0.5 * (m["cores"] or 1)
    L.append(f"- Load average (1 min) at start {_fmt((la0 or [None])[0], 2)}, at end {_fmt((la1 or [None])[0], 2)}"
             + (". **The machine was shared and busy while this ran** (other people's training and test runs on the "
                "same 2 cores), so absolute times are pessimistic and noisy; the comparisons between engines ran "
                "under the same conditions." if busy else "."))
    L.append("")
    L.append("## Targets (issue 6)\n")
    L.append("| Target | Limit | Measured | Met | How |")
    L.append("|---|---|---|---|---|")
    for t in res["targets"]:
        met = "–" if t["met"] is None else ("met" if t["met"] else "**missed**")
        nd = 2 if t["unit"] == "s" else (0 if t["unit"] == "MB" else 1)
        L.append(f"| {t['target']} | ≤ {t['limit']:g} {t['unit']} | {_fmt(t['measured'], nd)} {t['unit']} | {met} | {t['note']} |")
    L.append("")
    L.append("## Serving engine\n")
    if serving:
        L.append(f"The worker runs **{serving.get('runtime')} `{serving.get('file')}`** "
                 f"({serving.get('variant')}): {serving.get('rule')}. Chosen by `python -m ml export-tflite` "
                 f"on {serving.get('chosen_at', '?')}, written to the artifact's `metadata.json` (`serving`). "
                 "`ML_RUNTIME=keras|litert` overrides it; the LiteRT path never imports TensorFlow.\n")
    if tfl.get("variants"):
        k = tfl["keras"]
        L.append(f"Accuracy on the {tfl.get('split')} split ({tfl.get('photos')} photos, balanced accuracy over the "
                 f"model's {len(res.get('classes', [])) or 13} classes, as in the model card), from the export step:\n")
        L.append("| Engine | Balanced accuracy | Δ vs Keras (pt) | Gate false rejection | Top-1 agreement | Embedding cosine | File MB | Kept |")
        L.append("|---|---|---|---|---|---|---|---|")
        L.append(f"| Keras | {k['balanced_accuracy']:.4f} | – | {_fmt(k.get('gate_false_rejection'), 4)} | – | – | {k['size_bytes'] / 1e6:.1f} | yes |")
        for name, r in tfl["variants"].items():
            L.append(f"| LiteRT {name} | {r['balanced_accuracy']:.4f} | {-100 * r['balanced_accuracy_drop']:+.2f} | "
                     f"{_fmt(r.get('gate_false_rejection'), 4)} | {_fmt(r.get('top1_agreement_with_keras'), 4)} | "
                     f"{_fmt(r.get('embedding_cosine_to_keras'), 4)} | {r['size_bytes'] / 1e6:.1f} | {'yes' if r.get('kept') else 'no'} |")
        L.append("")
    eng = res.get("engines") or {}
    if eng:
        L.append("## Model time and memory per engine\n" + _when(res, "engines"))
        L.append("Each engine in a fresh process, 1 inference thread; median of "
                 f"{res.get('repeats_b1', '?')} calls at batch 1 and {res.get('repeats_b32', '?')} at batch 32 after warm-up; "
                 "memory from /proc (RSS after loading and one batch-1 call; peak = VmHWM after the batch-32 calls). "
                 f"A photo is {res.get('test_time_flips', 1)} view(s) (the artifact's test-time flips), "
                 "all in one engine call.\n")
        L.append("| Engine | ms/photo, batch 1 | ms/photo, batch 32 | Load s | RSS after load MB | Peak RSS MB | File MB |")
        L.append("|---|---|---|---|---|---|---|")
        for name, r in eng.items():
            if not isinstance(r, dict):  # measured_at, load_average
                continue
            if "skipped" in r:
                L.append(f"| {name} | skipped: {r['skipped']} | | | | | |")
                continue
            L.append(f"| {name} | {_fmt(r['ms_per_image_b1'], 2)} | {_fmt(r['ms_per_image_b32'], 2)} | {_fmt(r['load_s'], 2)} | "
                     f"{_fmt(r['rss_after_batch1_mb'], 0)} | {_fmt(r['peak_rss_mb'], 0)} | {_fmt(r.get('file_mb'), 1)} |")
        L.append("\nONNX Runtime was not tried: LiteRT already meets the model-time target and is the converter's "
                 "native format; another runtime would add a dependency for no measured need.\n")
    st = res.get("startup") or {}
    if st:
        L.append("## Worker start to ready\n" + _when(res, "startup"))
        L.append("A fresh Python process: imports, checksum-verified artifact load, the first photo classified "
                 "(a 12-MP JPEG). \"Django\" also sets Django up and loads through `diagnosis.classifier`, as a Celery "
                 "worker child does in `worker_process_init`. Start-to-ready is measured by the parent from spawning "
                 "the process to its \"ready\" line (median of the runs listed).\n")
        L.append("| Engine | Start to ready s (runs) | Imports s | Load s | RSS ready MB | RSS after 21 photos MB | Peak MB | TensorFlow imported |")
        L.append("|---|---|---|---|---|---|---|---|")
        for name, r in st.items():
            if not isinstance(r, dict):
                continue
            if "skipped" in r:
                L.append(f"| {name} | skipped: {r['skipped']} | | | | | | |")
                continue
            L.append(f"| {name} | {_fmt(r['start_to_ready_s'], 2)} ({', '.join(str(x) for x in r.get('start_to_ready_s_runs', []))}) | "
                     f"{_fmt(r['import_s'], 2)} | {_fmt(r['load_s'], 2)} | {_fmt(r['rss_ready_mb'], 0)} | "
                     f"{_fmt(r['rss_after_21_photos_mb'], 0)} | {_fmt(r['peak_rss_mb'], 0)} | {'yes' if r['tensorflow_imported'] else 'no'} |")
        L.append("")
    pre = res.get("preprocess") or {}
    if pre:
        L.append("## Preprocessing a 12-MP photo\n" + _when(res, "preprocess"))
        L.append(f"A {pre['photo_pixels'][0]}×{pre['photo_pixels'][1]} ({pre['photo_megapixels']:.1f} MP, {pre['photo_mb']:.1f} MB) "
                 f"JPEG: a real skin photo upscaled with sensor-like noise, saved as a phone would ({pre.get('phone_jpeg_mb', 0):.1f} MB, "
                 f"quality 95, EXIF orientation 6), then {pre.get('photo_origin', '')}. Decoded and prepared by the "
                 "shared `ml.preprocessing.open_image` + `prepare_batch`, as the worker does (median of "
                 f"{pre['repeats']}; decrypting the stored file is not included):\n")
        L.append(f"- with Pillow draft mode (JPEG decoded at reduced scale, to {pre['draft_decoded_size'][0]}×{pre['draft_decoded_size'][1]}): "
                 f"**{pre['draft_ms']:.1f} ms**")
        L.append(f"- full decode: {pre['no_draft_ms']:.1f} ms\n")
    da = res.get("draft_accuracy") or {}
    if da:
        L.append("### Does draft mode cost accuracy?\n" + _when(res, "draft_accuracy"))
        L.append(f"The {da['photos']} test photos are small (HAM10000 200×150, DermNet ≤ 320 px), so draft mode never "
                 "triggers on them as stored. To measure it, each was upscaled (bicubic) to a long side of "
                 f"{da['long_side_px']} px, saved as JPEG (quality {da['jpeg_quality']}), and classified by the serving engine "
                 f"({da['runtime']} `{da.get('file', '?')}`) after decoding with and without draft mode"
                 + (f" ({da['note']})" if da.get("note") else "") + ":\n")
        L.append("| Decode | Balanced accuracy | Gate false rejection |")
        L.append("|---|---|---|")
        for key, label in (("no_draft", "full decode"), ("draft", "draft mode")):
            L.append(f"| {label} | {da[key]['balanced_accuracy']:.4f} | {_fmt(da[key].get('gate_false_rejection'), 4)} |")
        L.append(f"\nDifference {100 * da['balanced_accuracy_drop']:+.2f} pt (positive = draft lower); the top-1 class is the "
                 f"same for {100 * da['top1_agreement']:.1f} % of photos. Draft mode is "
                 + ("kept: it costs at most half a point." if da["within_half_point"] else "**not** kept: it costs more than half a point.")
                 + " Upscaled photos are smoother than real phone photos, so this checks the decoder path rather than "
                 "phone-camera detail.\n")
    th = res.get("threads") or {}
    if th:
        L.append("## Processes × threads\n" + _when(res, "threads"))
        L.append(f"Photos per second on this machine for N worker processes × T inference threads each ({th['runtime']}, "
                 f"{th['seconds']:g} s per configuration with all its processes running at once; the configurations took turns "
                 f"for {th.get('rounds', 1)} round(s), the median round shown):\n")
        L.append("| Processes × threads | Model only, photos/s | End to end (decode 12-MP JPEG + classify), photos/s |")
        L.append("|---|---|---|")
        def cell(r):
            rounds = r.get("rounds_photos_per_s") or []
            return f"{r['photos_per_s']:.1f}" + (f" ({', '.join(str(x) for x in rounds)})" if len(rounds) > 1 else "")

        for key in th["model_only"]:
            L.append(f"| {key} | {cell(th['model_only'][key])} | {cell(th['end_to_end'].get(key, {'photos_per_s': 0}))} |")
        L.append("")
        if max((m.get("load_average_start") or [0])[:1] + (m.get("load_average_end") or [0])[:1]) > (m["cores"] or 1):
            L.append("The machine was busy with other people's jobs while this ran. Under such contention a configuration "
                     "with more inference threads also takes a larger share of the CPU *from the other tenants* (and our "
                     "processes ran at `nice 10`), so the model-only column favours more threads for a reason a dedicated "
                     "worker machine does not have. The end-to-end column, what a worker does per photo, still shows the "
                     "second thread per process costing throughput: decoding runs on the main thread while the "
                     "interpreter's worker threads compete with it.\n")
        for kind, label in (("end_to_end", "End to end"), ("model_only", "Model only")):
            rates = {k: v["photos_per_s"] for k, v in th[kind].items()}
            best = max(rates, key=rates.get)
            others = ", ".join(f"{k} {100 * (rates[k] / rates[best] - 1):+.0f} %" for k in rates if k != best)
            L.append(f"- {label}: best {best} ({rates[best]:.1f} photos/s); the others {others}.")
        L.append("")
    L.append("## Worker settings\n")
    L.append("- Celery prefork pool with one process per core (`--concurrency 2` here) and **one inference thread per "
             "process**: `ML_THREADS=1` (LiteRT interpreter threads; also TensorFlow's intra-op pool under "
             "`ML_RUNTIME=keras`), and `OMP_NUM_THREADS=1`, `TF_NUM_INTRAOP_THREADS=1`, `TF_NUM_INTEROP_THREADS=1` in the "
             "worker's environment. Libraries default to one thread per core in *each* process, so 2 processes × 2 threads "
             "oversubscribe 2 cores; the end-to-end column above is the one a worker lives by (decoding is single-threaded "
             "and competes with the inference threads).")
    L.append("- `--prefetch-multiplier 1` with `acks_late` (a long task does not hold photos another process could take) and "
             "the model loaded in `worker_process_init`, after the fork (diagnosis/tasks.py).")
    L.append("- `ML_RUNTIME=auto` (default) serves the artifact's `serving` choice; `keras` or `litert` override it.")
    L.append("- With the LiteRT engine the worker never imports TensorFlow; the Keras model is loaded only if something "
             "asks for `Classifier.model` (nothing in serving does: the occlusion heat map uses `Classifier.forward`), which "
             "would cost the TensorFlow start-up and ~550 MB in that process.\n")
    L.append("## Load test\n")
    L.append("End-to-end throughput and latency through the web app and the queue (`bench/loadtest.py`; method, "
             "every number and the analysis in [LOAD_TEST.md](LOAD_TEST.md)). The runs recorded in "
             "`docs/load_test.json`, newest first:\n")
    L.extend(load_test_rows(out_dir))
    return "\n".join(L)


def load_test_rows(out_dir) -> list[str]:
    """The load-test runs next to their targets (p95 <= 2 s, 0 lost, 0 duplicated), one row each."""
    path = Path(out_dir or ROOT / "docs") / "load_test.json"
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return ["No load-test run is recorded yet.\n"]
    rows = ["| finished | users × photos | think time | heatmaps | engine | results/s | p50 / p95 (s), target p95 ≤ 2 s "
            "| lost (target 0) | duplicated (target 0) |", "|---|---|---|---|---|---|---|---|---|"]
    for run in sorted(runs, key=lambda r: r["finished_at"], reverse=True):
        cfg, lat, audit = run["config"], run["client_latency_seconds"], run["audit"]
        engines = sorted({w.get("runtime", "?") for w in audit.get("workers", [])}) or ["?"]
        rows.append(f"| {run['finished_at']} | {cfg['users']} × {cfg['photos']} | {cfg.get('think_seconds', 0):g} s "
                    f"| {'on' if audit.get('heatmaps') else 'off'} | {', '.join(engines)} "
                    f"| {run['throughput_per_second']:.2f} | {lat['p50']:.2f} / {lat['p95']:.2f} "
                    f"({'met' if run['met_latency_target'] else 'missed'}) | {audit['lost']} | {audit['duplicated']} |")
    return rows + [""]


# --------------------------------------------------------------------------- main


def load_data(args):
    from ml.data import load_dermnet, load_ham, split_samples

    samples = []
    if args.ham and Path(args.ham).is_dir():
        samples += load_ham(args.ham)
    if args.dermnet and Path(args.dermnet).is_dir():
        samples += load_dermnet(args.dermnet)
    if not samples:
        return None
    return split_samples(samples, (0.70, 0.15, 0.15), seed=0)  # the training split (ml/cli.py defaults)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--ham", type=Path, default=None,
                        help="HAM10000 folder: the accuracy sections use its test split (skipped without data)")
    parser.add_argument("--dermnet", type=Path, default=None, help="DermNet folder, as for --ham")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--quick", action="store_true", help="few repeats, small photos: a smoke run")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated subset to (re)measure; the rest is kept from OUT/performance.json")
    parser.add_argument("--threads", type=int, default=1, help="inference threads per engine in 'engines'")
    parser.add_argument("--engines", default="", help="only these engines in 'engines' (e.g. keras_function,litert_int8)")
    parser.add_argument("--runtimes", default="litert,keras", help="runtimes whose start-up is measured")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, payload = args.child
        result = CHILDREN[mode](json.loads(payload))
        print(json.dumps(result, default=float), flush=True)
        return 0

    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    os.environ.update({k: v for k, v in thread_env(1).items() if k.startswith(("TF_", "OMP_"))})
    model = args.model.resolve()
    meta = load_meta(model)
    previous = {}
    if (args.out / "performance.json").is_file() and set(sections) != set(SECTIONS):
        previous = json.loads((args.out / "performance.json").read_text())
        if previous.get("model_version") != meta["version"]:
            previous = {}
        for name in SECTIONS:  # sections kept from an earlier run say when they were measured
            if isinstance(previous.get(name), dict) and name not in sections:
                previous[name].setdefault("measured_at", previous.get("measured_at"))
                previous[name].setdefault("load_average", (previous.get("machine") or {}).get("load_average_start"))
    from ml.tta import views_of

    res = {**previous, "machine": machine(), "model_version": meta["version"], "quick": args.quick,
           "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python -m bench.inference" + (" --quick" if args.quick else ""),
           "serving": meta.get("serving"), "tflite": meta.get("tflite"), "test_time_flips": views_of(meta),
           "classes": [c["code"] for c in meta["classes"]],
           "repeats_b1": 5 if args.quick else 100, "repeats_b32": 2 if args.quick else 10}
    data = load_data(args)
    runtime = (meta.get("serving") or {}).get("runtime", "keras")

    from PIL import Image

    from ml.data import crop_watermark

    base = None
    if data:
        test = data["test"]
        base = crop_watermark(Image.open(test[len(test) // 2].path).convert("RGB"), test[len(test) // 2].watermark)
    phone = make_phone_photo(base, size=(800, 600) if args.quick else PHOTO_SIZE)
    photo_bytes, photo_origin = stored_photo(phone)
    photo_path = CACHE / "phone-12mp.jpg" if not args.quick else args.out / ".bench-photo.jpg"
    photo_path.parent.mkdir(parents=True, exist_ok=True)
    photo_path.write_bytes(photo_bytes)

    if "preprocess" in sections:
        print("preprocess", file=sys.stderr, flush=True)
        res["preprocess"] = section_preprocess(photo_bytes, meta["input_size"], meta["preprocessing"], args.quick)
        res["preprocess"].update({"photo_origin": photo_origin, "phone_jpeg_mb": len(phone) / 1e6})
    if "engines" in sections:
        print("engines", file=sys.stderr, flush=True)
        only = [e for e in args.engines.split(",") if e]
        files = variant_files(model, meta, data, args.quick, only)
        res["engines"] = section_engines(model, meta, files, args.quick, args.threads, only)
    if "startup" in sections:
        print("startup", file=sys.stderr, flush=True)
        res["startup"] = section_startup(model, photo_path, args.quick, [r for r in args.runtimes.split(",") if r])
    if "threads" in sections:
        print("threads", file=sys.stderr, flush=True)
        res["threads"] = section_threads(model, photo_path, runtime, args.quick)
    if "draft_accuracy" in sections:
        if data:
            print("draft_accuracy", file=sys.stderr, flush=True)
            samples = data["test"][:40] if args.quick else data["test"]
            res["draft_accuracy"] = section_draft_accuracy(model, runtime, samples, args.quick)
        else:
            res.pop("draft_accuracy", None)
    res["machine"]["load_average_end"] = list(os.getloadavg())
    if args.quick:
        photo_path.unlink(missing_ok=True)
    write_report(res, args.out)
    print(json.dumps(res["targets"], indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
