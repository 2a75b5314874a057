"""bench/inference.py runs end to end (smoke mode) on a tiny exported artifact and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_run_writes_the_report(tmp_path):
    from ml.data import load_dermnet, load_ham, split_samples
    from ml.export import export_litert
    from tests.conftest import build_tiny_artifact
    from tests.ml.conftest import write_dermnet, write_ham

    art = tmp_path / "tiny-bench-1"
    build_tiny_artifact(art, version="tiny-bench-1")
    ham, dermnet = write_ham(tmp_path / "ham", lesions_per_class=4, photos_per_lesion=1), write_dermnet(tmp_path / "dermnet", per_class=4)
    splits = split_samples(load_ham(ham) + load_dermnet(dermnet), (0.5, 0.25, 0.25))
    export_litert(art, splits["test"], calibration_samples=splits["train"], variants=("fp32",), timing_repeats=2)
    out = tmp_path / "docs"
    cmd = [sys.executable, "-m", "bench.inference", "--quick", "--model", str(art), "--ham", str(ham),
           "--dermnet", str(dermnet), "--out", str(out), "--engines", "keras_function,litert_fp32", "--runtimes", "litert"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    res = json.loads((out / "performance.json").read_text())
    assert res["model_version"] == "tiny-bench-1" and res["machine"]["cores"] >= 1
    assert set(res["engines"]) == {"keras_function", "litert_fp32"}
    for engine in res["engines"].values():
        assert engine["ms_per_image_b1"] > 0 and engine["ms_per_image_b32"] > 0 and engine["peak_rss_mb"] > 0
    start = res["startup"]["litert"]
    assert start["status"] in ("ok", "uncertain") and start["tensorflow_imported"] is False
    assert 0 < start["in_process_ready_s"] <= start["start_to_ready_s"]
    assert res["preprocess"]["draft_ms"] > 0 and res["preprocess"]["no_draft_ms"] > 0
    assert res["threads"]["model_only"]["2x1"]["photos_per_s"] > 0
    assert res["draft_accuracy"]["photos"] > 0
    assert {t["target"] for t in res["targets"]} and all("met" in t for t in res["targets"])
    doc = (out / "PERFORMANCE.md").read_text()
    assert "## Targets (issue 6)" in doc and "## Load test" in doc and "LOAD_TEST.md" in doc
    assert res["machine"]["cpu"] in doc
    # a partial re-run keeps the other sections
    run = subprocess.run(cmd[:-4] + ["--sections", "preprocess"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    again = json.loads((out / "performance.json").read_text())
    kept = {k: v for k, v in again["engines"].items() if k not in ("measured_at", "load_average")}
    assert kept == res["engines"] and again["engines"]["measured_at"] == res["measured_at"]
    assert again["preprocess"] != res["preprocess"] and "measured_at" not in again["preprocess"]
