from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from .forms import SignUpForm


def signup(request):
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, "Welcome! Your account is ready.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup.html", {"form": form})


@never_cache  # the page shows the API token: keep it out of browser and proxy caches
@login_required
def profile(request):
    user = request.user
    return render(request, "accounts/profile.html", {
        "lesion_count": user.lesions.count(),
        "submission_count": user.submissions.count(),
        # Reading only: a token is created by an explicit POST, never as a side effect of a GET.
        "token": Token.objects.filter(user=user).first(),
    })


@require_POST
@login_required
def regenerate_token(request):
    """Create the user's API token, or replace it: the old key stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
    messages.success(request, "A new API token was created. Clients using the old one must be updated.")
    return redirect("profile")
