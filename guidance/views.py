"""Public condition pages (no personal data, no login needed) and the symptom assistant's form (owner only)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from diagnosis.selectors import get_submission_for

from . import selectors, services
from .assistant import MAX_MESSAGE_LENGTH


def condition_list(request):
    return render(request, "guidance/condition_list.html", {"conditions": selectors.conditions()})


def condition_detail(request, code):
    return render(request, "guidance/condition_detail.html", {"condition": selectors.get_condition(code)})


class AssistantMessageForm(forms.Form):
    message = forms.CharField(max_length=MAX_MESSAGE_LENGTH, strip=True)


@login_required
@require_POST
def assistant_message(request, submission_uuid):
    """A plain form post (quick-reply button or typed text); back to the result page's conversation."""
    submission = get_submission_for(request.user, submission_uuid)
    form = AssistantMessageForm(request.POST)
    if form.is_valid():
        try:
            services.assistant_turn(submission, form.cleaned_data["message"])
        except services.AssistantUnavailable as error:
            messages.error(request, str(error))
    else:
        messages.error(request, f"Type a message of at most {MAX_MESSAGE_LENGTH} characters, or press a button.")
    return redirect(reverse("diagnosis:submission-detail", args=[submission.uuid]) + "#assistant-latest")
