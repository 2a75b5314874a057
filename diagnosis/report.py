"""A report on one lesion for a doctor: a printable page and a PDF with the same content.

Per photo: the date, the photo itself (decrypted and scaled down, embedded in the PDF), the
four most probable conditions, the person's answers (age, how long, symptoms, ...), the urgency
tier with its reasons, the model version, and what changed since the previous photo. Every
report carries the site's "not a diagnosis" notice. The caller fetches the lesion through an
owner-scoped selector; nothing here looks anything up by id.

The PDF is drawn with reportlab (no browser or system library needed). Text uses DejaVu Sans
when the system has it (any lesion name prints), else reportlab's bundled Bitstream Vera.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from django.db.models import Prefetch
from django.http import HttpResponse
from django.utils import timezone
from django.utils.formats import date_format
from PIL import Image

from guidance.selectors import conversation_state, submission_triage, triage_answers
from guidance import assistant
from guidance.triage import TriageResult

from . import timeline
from .models import Prediction, Submission

logger = logging.getLogger(__name__)

NOT_A_DIAGNOSIS_TITLE = "This is not a diagnosis."
NOT_A_DIAGNOSIS = (
    "This service estimates which conditions a photo resembles, to help "
    "decide how soon to see a doctor; it can be wrong. Only a doctor who examines the skin can "
    "make a diagnosis. If a spot bleeds, grows, changes or worries you, see a doctor whatever "
    "the result says."
)
TOP_N = 4
PHOTO_MAX_SIDE = 900  # pixels: sharp at 8 cm wide in print, small enough for a many-photo PDF
PHOTO_WIDTH_CM = 7.5


@dataclass
class Entry:
    """One photo of the lesion as the report shows it."""

    submission: Submission
    number: int
    predictions: list[Prediction]
    triage: TriageResult | None
    answers: list[tuple[str, str]]
    assistant_answers: list[tuple[str, str]] = field(default_factory=list)
    changes: list[timeline.Change] = field(default_factory=list)


@dataclass
class Report:
    lesion: object
    entries: list[Entry]
    generated_at: datetime
    notice: str = NOT_A_DIAGNOSIS

    @property
    def latest_triage(self) -> TriageResult | None:
        """The urgency of the most recent photo that has one (a doctor reads this first)."""
        for entry in reversed(self.entries):
            if entry.triage is not None:
                return entry.triage
        return None

    @property
    def model_versions(self) -> list[str]:
        return sorted({e.submission.model_version for e in self.entries if e.submission.model_version})


def reported_symptoms(submission) -> list[str]:
    """Every symptom the person reported for this photo, on the upload form or to the assistant, as labels.

    The same union the triage reads (guidance.selectors.triage_answers), so the report never says
    "none reported" next to an assistant answer "it bleeds: yes".
    """
    codes = triage_answers(submission, conversation_state(submission))["symptoms"]
    labels = dict(Submission.Symptom.choices)
    return [labels.get(code, code) for code in codes]


def context_answers(submission) -> list[tuple[str, str]]:
    """The optional answers given with the photo, as (question, answer), only those answered."""
    rows = []
    if submission.age is not None:
        rows.append(("Age", str(submission.age)))
    for name, question in (("sex", "Sex"), ("anatomic_site", "Body site"), ("skin_type", "Skin type"),
                           ("duration", "Has had it for")):
        if getattr(submission, name):
            rows.append((question, getattr(submission, f"get_{name}_display")()))
    labels = reported_symptoms(submission)
    rows.append(("Symptoms (upload form and assistant)", ", ".join(labels) if labels else "none reported"))
    return rows


def _assistant_answer_text(question, value) -> str:
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    if value is None:
        return "Not sure"
    labels = dict(question.options)
    if isinstance(value, list):
        return ", ".join(str(labels.get(v, v)) for v in value) or "No"
    return str(labels.get(value, value))


def assistant_answers(submission) -> list[tuple[str, str]]:
    """What the person told the symptom assistant about this photo (guidance/assistant.py), as (question, answer).

    Answers copied from the upload form are left out (they are in ``context_answers``); skipped
    questions are listed as such. Read defensively: an optional section must never break the report.
    """
    try:
        state = conversation_state(submission) or {}
        answers = state.get("answers") or {}
        prefilled, skipped = set(state.get("prefilled") or []), set(state.get("skipped") or [])
        rows = []
        for question in assistant.SCRIPT:
            label = question.text.split(":", 1)[0] if ":" in question.text else question.text
            if question.key in answers and question.key not in prefilled:
                rows.append((label, _assistant_answer_text(question, answers[question.key])))
            elif question.key in skipped:
                rows.append((label, "skipped"))
        return rows
    except Exception:  # noqa: BLE001
        logger.exception("could not read the assistant's answers for submission %s", submission.pk)
        return []


def build_report(lesion, now=None) -> Report:
    """Every photo of the lesion, oldest first, with what a doctor needs to read it."""
    submissions = (lesion.submissions.prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.order_by("rank"))).order_by("created_at", "pk"))
    entries = []
    previous_point = None
    for number, submission in enumerate(submissions, start=1):
        predictions = list(submission.predictions.all())
        entry = Entry(
            submission=submission,
            number=number,
            predictions=submission.shown_predictions(predictions)[:TOP_N],
            triage=submission_triage(submission, predictions),
            answers=context_answers(submission),
            assistant_answers=assistant_answers(submission),
        )
        if submission.status == Submission.Status.DONE:
            point = timeline.Point(submission=submission, taken_at=submission.created_at,
                                   model_version=submission.model_version,
                                   probabilities={p.code: p.probability for p in predictions},
                                   embedding=timeline.decode_embedding(submission.embedding))
            if previous_point is not None:
                entry.changes = timeline.changes(previous_point, point)
            previous_point = point
        entries.append(entry)
    return Report(lesion=lesion, entries=entries, generated_at=now or timezone.now())


def photo_jpeg(submission, max_side: int = PHOTO_MAX_SIDE) -> bytes | None:
    """The stored photo, decrypted and scaled down, as JPEG bytes; None if it cannot be read."""
    try:
        with submission.image.open("rb") as fh:
            img = Image.open(fh)
            img.draft("RGB", (max_side, max_side))
            img = img.convert("RGB")
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85, optimize=True)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - a missing file must not make the whole report fail
        logger.exception("could not read the photo of submission %s for the report", submission.pk)
        return None


# --- PDF --------------------------------------------------------------------------------------

_FONTS: tuple[str, str] | None = None


def _fonts() -> tuple[str, str]:
    """(regular, bold) font names, registered once per process."""
    global _FONTS
    if _FONTS is None:
        import reportlab
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        candidates = [
            (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
             Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")),
            (Path(reportlab.__file__).parent / "fonts" / "Vera.ttf",
             Path(reportlab.__file__).parent / "fonts" / "VeraBd.ttf"),
        ]
        _FONTS = ("Helvetica", "Helvetica-Bold")
        for regular, bold in candidates:
            if regular.is_file() and bold.is_file():
                pdfmetrics.registerFont(TTFont("ReportSans", str(regular)))
                pdfmetrics.registerFont(TTFont("ReportSans-Bold", str(bold)))
                pdfmetrics.registerFontFamily("ReportSans", normal="ReportSans", bold="ReportSans-Bold")
                _FONTS = ("ReportSans", "ReportSans-Bold")
                break
    return _FONTS


def _when(value) -> str:
    return date_format(timezone.localtime(value), "j M Y, H:i")


def render_pdf(report: Report) -> bytes:
    """The report as PDF bytes (A4)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Image as PdfImage,
    )
    from reportlab.platypus import (
        Paragraph,
        SimpleDocTemplate,
        Table,
        TableStyle,
    )

    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=12.5)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11, textColor=colors.HexColor("#5b6876"))
    h1 = ParagraphStyle("h1", parent=body, fontName=bold, fontSize=17, leading=21, spaceAfter=4)
    # keepWithNext: a photo's heading never ends a page without its photo and details.
    h2 = ParagraphStyle("h2", parent=body, fontName=bold, fontSize=12, leading=15, spaceBefore=10, spaceAfter=4,
                        keepWithNext=1)
    notice = ParagraphStyle("notice", parent=body, backColor=colors.HexColor("#fff7ed"),
                            borderColor=colors.HexColor("#9a3412"), borderWidth=0.8, borderPadding=6,
                            spaceBefore=6, spaceAfter=10)

    def p(text, style=body):
        return Paragraph(escape(str(text)), style)

    def labelled(label, text, style=body):
        return Paragraph(f"<b>{escape(label)}:</b> {escape(str(text))}", style)

    lesion = report.lesion
    story = [
        p(f"Skin spot report: {lesion.name}", h1),
        labelled("Body site", lesion.get_body_site_display() or "not given"),
        labelled("Followed since", date_format(timezone.localtime(lesion.created_at), "j M Y")),
        labelled("Photos", len(report.entries)),
        labelled("Model version(s)", ", ".join(report.model_versions) or "none yet"),
        labelled("Report made", _when(report.generated_at)),
    ]
    latest = report.latest_triage
    if latest is not None:
        story.append(labelled("Latest urgency", latest.title))
    story.append(Paragraph(f"<b>{escape(NOT_A_DIAGNOSIS_TITLE)}</b> {escape(report.notice)}", notice))

    for entry in report.entries:
        s = entry.submission
        details = [labelled("Taken", _when(s.created_at)),
                   labelled("Status", s.get_status_display() + (" (the model was uncertain)" if s.uncertain else ""))]
        if s.failure_reason:
            details.append(p(s.failure_reason, small))
        if entry.predictions:
            details.append(Paragraph("<b>Most resembles:</b>", body))
            details += [p(f"{i}. {pred.label} ({pred.code}): {pred.percent}\u00a0%")  # no break before %
                        for i, pred in enumerate(entry.predictions, start=1)]
        if s.model_version:
            details.append(labelled("Model version", s.model_version, small))
        if entry.triage is not None:
            details.append(labelled("Urgency", entry.triage.title))
            if not entry.triage.assessed:
                details.append(p(entry.triage.state_title + ("; the ranking above is shown at the person's request"
                                                             if entry.triage.shown_anyway else "") + ".", small))
            if entry.triage.evidence:
                details.append(p(entry.triage.evidence, small))
            details += [p(f"• {reason}", small) for reason in entry.triage.reasons]
            if entry.triage.noted:
                details.append(p("Also noted (did not change the urgency):", small))
                details += [p(f"• {item}", small) for item in entry.triage.noted]
        details.append(Paragraph("<b>Answers given with the photo:</b>", body))
        details += [labelled(q, a, small) for q, a in entry.answers]
        if entry.assistant_answers:
            details.append(Paragraph("<b>Symptom assistant:</b>", body))
            details += [labelled(q, a, small) for q, a in entry.assistant_answers]
        if entry.changes:
            details.append(Paragraph("<b>Changed since the previous photo:</b>", body))
            details += [p(f"• {change.message}", small) for change in entry.changes]

        jpeg = photo_jpeg(s)
        if jpeg is not None:
            width_px, height_px = Image.open(io.BytesIO(jpeg)).size
            width = PHOTO_WIDTH_CM * cm
            photo = PdfImage(io.BytesIO(jpeg), width=width, height=width * height_px / width_px)
        else:
            photo = p("(photo unavailable)", small)
        table = Table([[photo, details]], colWidths=[PHOTO_WIDTH_CM * cm + 0.4 * cm, None])
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("LEFTPADDING", (0, 0), (0, 0), 0)]))
        story += [p(f"Photo {entry.number} of {len(report.entries)}", h2), table]

    if not report.entries:
        story.append(p("No photo of this spot yet."))

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont(regular, 7.5)
        canvas.setFillColor(colors.HexColor("#5b6876"))
        canvas.drawString(1.8 * cm, 1.1 * cm, f"Skin spot check · not a diagnosis · made {_when(report.generated_at)}")
        canvas.drawRightString(A4[0] - 1.8 * cm, 1.1 * cm, f"page {doc.page}")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=1.8 * cm, rightMargin=1.8 * cm, topMargin=1.6 * cm,
                            bottomMargin=1.8 * cm, title=f"Skin spot report: {lesion.name}",
                            author="Skin spot check", subject="Not a diagnosis")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def pdf_response(lesion) -> HttpResponse:
    """The lesion's report as a PDF download (shared with the API)."""
    pdf = render_pdf(build_report(lesion))
    filename = f"spot-report-{timezone.localdate():%Y-%m-%d}.pdf"  # no health data in the name
    return HttpResponse(pdf, content_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
    })
