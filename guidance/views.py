"""Public condition pages: general health information, no personal data, no login needed."""

from django.shortcuts import render

from . import selectors


def condition_list(request):
    return render(request, "guidance/condition_list.html", {"conditions": selectors.conditions()})


def condition_detail(request, code):
    return render(request, "guidance/condition_detail.html", {"condition": selectors.get_condition(code)})
