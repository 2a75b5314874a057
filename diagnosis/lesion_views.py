"""Pages that follow one lesion over time: two photos compared, and the report for a doctor.

Each view fetches the lesion through the owner-scoped selector (404 for anyone else) and hands
the work to diagnosis/timeline.py and diagnosis/report.py.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from guidance.selectors import submission_triage

from . import report, selectors, timeline


def _side(point):
    """What one side of the comparison shows about its photo."""
    if point is None:
        return None
    shown = point.submission.shows_ranking
    return {"point": point, "submission": point.submission, "top": point.top(timeline.TOP_N) if shown else [],
            "triage": submission_triage(point.submission)}


@login_required
@require_GET
def lesion_compare(request, lesion_uuid):
    lesion = selectors.get_lesion_for(request.user, lesion_uuid)
    points = timeline.lesion_timeline(lesion)
    a, b = timeline.pick_pair(points, request.GET.get("a"), request.GET.get("b"))
    return render(request, "diagnosis/lesion_compare.html", {
        "lesion": lesion,
        "points": points,
        "a": _side(a),
        "b": _side(b),
        "pair_changes": timeline.changes(a, b) if a is not None and b is not None and a is not b else [],
        "chart": timeline.probability_chart(points),
    })


@login_required
@require_GET
def lesion_report(request, lesion_uuid):
    lesion = selectors.get_lesion_for(request.user, lesion_uuid)
    return render(request, "diagnosis/lesion_report.html", {"report": report.build_report(lesion)})


@login_required
@require_GET
def lesion_report_pdf(request, lesion_uuid):
    return report.pdf_response(selectors.get_lesion_for(request.user, lesion_uuid))
