"""A lesion over time: its analysed photos in date order, what changed between two of them, a chart.

The reads here take a lesion (or lesions) the caller already fetched through an owner-scoped
selector; nothing in this module looks objects up by id.

**When a photo counts as "changed"** (:func:`changes`, compared with the previous analysed
photo of the same lesion, or with any photo the person picks on the comparison page):

(a) the most probable condition is a different one;
(b) the malignancy sum ``p(mel)+p(bcc)+p(scc)+p(akiec)`` (``guidance.triage``) rose by more than
    ``LESION_CHANGE_MALIGNANCY_MARGIN`` (default 0.10, i.e. 10 percentage points);
(c) the cosine distance between the two photos' image embeddings exceeds
    ``LESION_CHANGE_EMBEDDING_THRESHOLD``. Embeddings are compared only when both photos were
    analysed by the same model version (another model's embedding space is not comparable) and
    both have one (analyses before the embedding was stored have none).

The default embedding threshold, 0.53, was measured with ``bench/embedding_drift.py`` (numbers in
``bench/embedding_drift.json``) on effnetlite0-v4 and again on effnetlite0-v7, whose embedding is
v4's (member 1 of the ensemble; same numbers), over all 612 HAM10000 lesions with
two or more photos that the model never trained on (validation + test splits of the training
seed; 1,386 photos, at most 3 per lesion; embeddings rounded to float16 as stored). Cosine
distance between two photos of the *same* lesion: median 0.139, 95th percentile 0.525 (936
pairs); of two *different* lesions with the same diagnosis: median 0.373 (63,410 pairs). So 0.53
flags about 5 % of re-photographed lesions that did not change (HAM's repeat photos include
follow-up visits of nevi that stayed benign) and 26 % of pairs of two different same-class
lesions (50 % across classes); on effnetlite0-v3 the same measurement gave 0.44 (51 % and 64 %),
on v2 0.48. The embedding was trained to tell classes apart, not to recognise one lesion (v4's,
trained end to end on class labels, even less so), so this rule is a
coarse "looks rather different" signal beside the two probability rules, tuned to keep false
alarms rare. HAM's photos are dermoscopic; phone photos vary more in light and angle, which would
push same-lesion distances up — re-run the script on such pairs when we have them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db.models import Prefetch

from guidance.triage import MALIGNANT_CODES, malignancy_probability
from ml.classes import label_for

from .models import Prediction, Submission

DEFAULT_MALIGNANCY_MARGIN = 0.10
DEFAULT_EMBEDDING_THRESHOLD = 0.53
TOP_N = 4
CHART_TOP_K = 3  # classes that were ever among a photo's top 3 get a line in the chart
MALIGNANCY_SERIES = "malignancy"

TOP_CLASS, MALIGNANCY, APPEARANCE = "top_class", "malignancy", "appearance"


@dataclass(frozen=True)
class Change:
    """One reason why a photo counts as changed: ``rule`` is stable (API), ``message`` is for people."""

    rule: str
    message: str

    def __str__(self):
        return self.message


@dataclass
class Point:
    """One analysed photo of a lesion."""

    submission: Submission
    taken_at: datetime
    model_version: str
    probabilities: dict[str, float]
    embedding: np.ndarray | None = None
    changes: list[Change] = field(default_factory=list)  # against the previous point

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def top_code(self) -> str | None:
        return max(self.probabilities, key=self.probabilities.get) if self.probabilities else None

    @property
    def malignancy(self) -> float:
        return malignancy_probability(self.probabilities)

    def top(self, n: int = TOP_N) -> list[tuple[str, str, float]]:
        """``[(code, label, probability)]``, most probable first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])[:n]
        return [(code, label_for(code), p) for code, p in ranked]


def decode_embedding(blob) -> np.ndarray | None:
    """``Submission.embedding`` (float16 bytes; a memoryview on PostgreSQL) as a float array."""
    if not blob:
        return None
    vector = np.frombuffer(bytes(blob), dtype=np.float16).astype(np.float64)
    return vector if vector.size and np.all(np.isfinite(vector)) else None


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """``1 - cos(a, b)``; None when the vectors cannot be compared (other size, zero length)."""
    if a is None or b is None or a.shape != b.shape:
        return None
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0:
        return None
    return float(1.0 - np.clip(np.dot(a, b) / norm, -1.0, 1.0))


def _pct(p: float) -> str:
    return f"{p * 100:.0f} %"


def malignancy_margin() -> float:
    return float(getattr(settings, "LESION_CHANGE_MALIGNANCY_MARGIN", DEFAULT_MALIGNANCY_MARGIN))


def embedding_threshold() -> float:
    return float(getattr(settings, "LESION_CHANGE_EMBEDDING_THRESHOLD", DEFAULT_EMBEDDING_THRESHOLD))


def changes(previous: Point, current: Point, *, margin: float | None = None,
            threshold: float | None = None) -> list[Change]:
    """Why ``current`` counts as changed since ``previous`` (empty: no change); rules in the module doc."""
    margin = malignancy_margin() if margin is None else margin
    threshold = embedding_threshold() if threshold is None else threshold
    found = []
    before, after = previous.top_code, current.top_code
    if before and after and before != after:
        found.append(Change(TOP_CLASS, f"The most likely condition changed from {label_for(before)} "
                                       f"to {label_for(after)}."))
    if previous.probabilities and current.probabilities:
        rise = current.malignancy - previous.malignancy
        if rise > margin:
            found.append(Change(MALIGNANCY, f"The combined probability of skin cancer or a pre-cancerous spot "
                                            f"rose from {_pct(previous.malignancy)} to {_pct(current.malignancy)}."))
    if previous.model_version == current.model_version:
        distance = cosine_distance(previous.embedding, current.embedding)
        if distance is not None and distance > threshold:
            found.append(Change(APPEARANCE, "The spot looks different from the earlier photo: its colour, shape "
                                            "and texture, as the model sees them, moved more than they usually do "
                                            "between two photos of an unchanged spot. Different light or distance "
                                            "can do this too, so compare the two photos yourself."))
    return found


def _done_submissions(queryset):
    return (queryset.filter(status=Submission.Status.DONE)
            .prefetch_related(Prefetch("predictions", queryset=Prediction.objects.order_by("rank")))
            .order_by("created_at", "pk"))


def _point(submission) -> Point:
    return Point(
        submission=submission,
        taken_at=submission.created_at,
        model_version=submission.model_version,
        probabilities={p.code: p.probability for p in submission.predictions.all()},
        embedding=decode_embedding(submission.embedding),
    )


def _with_changes(points: list[Point]) -> list[Point]:
    for previous, current in zip(points, points[1:]):
        current.changes = changes(previous, current)
    return points


def lesion_timeline(lesion) -> list[Point]:
    """The lesion's analysed (done) photos, oldest first, each with its changes since the one before."""
    return _with_changes([_point(s) for s in _done_submissions(lesion.submissions.all())])


def latest_changes(lesions) -> dict[int, list[Change]]:
    """Lesion pk → the changes of its latest analysed photo (for the badges on the lists): two queries."""
    lesions = list(lesions)
    by_lesion: dict[int, list[Point]] = {}
    for submission in _done_submissions(Submission.objects.filter(lesion__in=lesions)):
        by_lesion.setdefault(submission.lesion_id, []).append(_point(submission))
    return {pk: changes(points[-2], points[-1]) if len(points) >= 2 else [] for pk, points in by_lesion.items()}


def pick_pair(points: list[Point], a=None, b=None) -> tuple[Point | None, Point | None]:
    """The two photos to compare: by submission UUID (strings) when given and found, else first and latest."""
    by_uuid = {str(p.submission.uuid): p for p in points}
    first = points[0] if points else None
    last = points[-1] if points else None
    return by_uuid.get(str(a or ""), first), by_uuid.get(str(b or ""), last)


# --- chart ------------------------------------------------------------------------------------

# One colour per class, stable across lesions; colour-blind-friendly where it matters (Okabe-Ito first).
PALETTE = {
    "mel": "#d55e00", "bcc": "#cc79a7", "scc": "#e69f00", "akiec": "#f0e442", "nv": "#0072b2",
    "bkl": "#56b4e9", "df": "#009e73", "vasc": "#8c564b", "ad": "#7f7f7f", "tinea": "#bcbd22",
    "acne": "#17becf", "psoriasis": "#9467bd", "other": "#444444", MALIGNANCY_SERIES: "#b91c1c",
}
WIDTH, HEIGHT = 640, 280
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 16, 12, 46


def chart_series_codes(points: list[Point], k: int = CHART_TOP_K) -> list[str]:
    """Classes that were among the top ``k`` of at least one photo, in order of their highest probability."""
    best: dict[str, float] = {}
    for point in points:
        for code, _label, p in point.top(k):
            best[code] = max(best.get(code, 0.0), p)
    return sorted(best, key=lambda code: -best[code])


def probability_chart(points: list[Point]) -> dict:
    """Geometry for templates/diagnosis/_probability_chart.html: an inline SVG, no script.

    X is proportional to the photo dates (a single photo sits in the middle), Y is probability
    0-100 %. One series per class in :func:`chart_series_codes` plus the malignancy sum.
    """
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    if not points:
        return {"width": WIDTH, "height": HEIGHT, "series": [], "ticks": [], "grid": [], "count": 0}
    times = [p.taken_at.timestamp() for p in points]
    span = max(times) - min(times)

    def x(i):
        return PAD_LEFT + (inner_w / 2 if span == 0 else (times[i] - min(times)) / span * inner_w)

    def y(p):
        return PAD_TOP + (1.0 - max(0.0, min(1.0, p))) * inner_h

    series = []
    codes = chart_series_codes(points)
    for code in [*codes, MALIGNANCY_SERIES]:
        if code == MALIGNANCY_SERIES:
            values = [p.malignancy for p in points]
            label = "Skin cancer or pre-cancer (sum of " + ", ".join(MALIGNANT_CODES) + ")"
        else:
            values = [p.probabilities.get(code, 0.0) for p in points]
            label = label_for(code)
        markers = [{"x": round(x(i), 1), "y": round(y(v), 1), "value": round(v * 100, 1),
                    "date": points[i].taken_at} for i, v in enumerate(values)]
        series.append({
            "code": code, "label": label, "color": PALETTE.get(code, "#333333"),
            "dashed": code == MALIGNANCY_SERIES, "markers": markers,
            "polyline": " ".join(f"{m['x']},{m['y']}" for m in markers),
        })
    grid = [{"y": round(y(v / 100), 1), "label": f"{v} %"} for v in (0, 25, 50, 75, 100)]
    ticks = [{"x": round(x(i), 1), "y": HEIGHT - PAD_BOTTOM + 14, "date": p.taken_at, "changed": p.changed,
              # The first and last labels grow inwards, so they stay inside the drawing.
              "anchor": "middle" if span == 0 or 0 < i < len(points) - 1 else "start" if i == 0 else "end"}
             for i, p in enumerate(points)]
    return {"width": WIDTH, "height": HEIGHT, "left": PAD_LEFT, "right": WIDTH - PAD_RIGHT,
            "bottom": HEIGHT - PAD_BOTTOM, "series": series, "grid": grid, "ticks": ticks,
            "count": len(points)}
