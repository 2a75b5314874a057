import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import limits, selectors, services
from .forms import ChoosePasswordForm, ConsentForm, DeleteAccountForm, SignUpForm

logger = logging.getLogger("skinsite.security")


def _too_many(request, template, context, seconds):
    """The page again, with a 429 that says when to come back (issue 13: every 429 has Retry-After)."""
    response = render(request, template, {**context, "retry_minutes": max(1, round(seconds / 60))}, status=429)
    response["Retry-After"] = str(seconds)
    return response


class LoginView(auth_views.LoginView):
    """Django's log-in, answering 429 while the address has too many failed log-ins (accounts/limits.py).

    axes' lock-out (one username from one address) is still answered by AxesMiddleware.
    """

    def form_invalid(self, form):
        seconds = limits.limited_for(self.request)
        if seconds:
            return _too_many(self.request, self.template_name, self.get_context_data(form=form), seconds)
        return super().form_invalid(form)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset: the same answer whether or not the address has an account (Django's own
    behaviour, kept), a limit per client address (429) and at most ``account_mail`` mails per hour
    to one address (beyond it the page answers as usual and sends nothing)."""

    def post(self, request, *args, **kwargs):
        limit = limits.password_resets(request)
        if not limit.allow():
            return _too_many(request, self.template_name, self.get_context_data(form=self.get_form()),
                             limit.retry_after())
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        if limits.mails_to(form.cleaned_data["email"]).allow():
            return super().form_valid(form)
        logger.info("password reset mail not sent: too many to one address")
        return HttpResponseRedirect(self.get_success_url())


def signup(request):
    """Step 1: username and e-mail. The answer is the same whether or not either exists; the e-mail
    says what happened (accounts/services.py, request_signup)."""
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        limit = limits.signups(request)
        if not limit.allow():
            return _too_many(request, "accounts/signup.html", {"form": form}, limit.retry_after())
        if form.is_valid():
            services.request_signup(username=form.cleaned_data["username"], email=form.cleaned_data["email"],
                                    request=request)
            return redirect("signup-done")
    return render(request, "accounts/signup.html", {"form": form})


SIGNUP_TOKEN_SESSION_KEY = "signup_token"


def signup_done(request):
    return render(request, "accounts/signup_done.html")


@never_cache
def signup_confirm(request):
    """Step 2, from the e-mailed link (``?token=``): choose a password; the account is created and
    signed in. A forged or expired link, or a name or address taken since, gets an explanation."""
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    if request.method == "GET" and "token" in request.GET:
        # As Django's password-reset links do: keep the token out of the address from here on,
        # so that access logs and Referer headers of the page and its form never carry it.
        request.session[SIGNUP_TOKEN_SESSION_KEY] = request.GET["token"]
        return redirect("signup-confirm")
    token = request.GET.get("token") or request.session.get(SIGNUP_TOKEN_SESSION_KEY, "")
    data = services.read_signup_token(token)
    if data is None:
        return render(request, "accounts/signup_link.html", {"problem": "invalid"})
    if not services.signup_still_possible(data["username"], data["email"]):
        return render(request, "accounts/signup_link.html", {"problem": "taken"})
    form = ChoosePasswordForm(request.POST or None,
                              user=get_user_model()(username=data["username"], email=data["email"]))
    if request.method == "POST" and form.is_valid():
        user = services.create_account(username=data["username"], email=data["email"],
                                       password=form.cleaned_data["password1"])
        if user is None:
            return render(request, "accounts/signup_link.html", {"problem": "taken"})
        # Named: with axes in AUTHENTICATION_BACKENDS, login() cannot guess which backend applies.
        request.session.pop(SIGNUP_TOKEN_SESSION_KEY, None)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome! Your account is ready.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup_confirm.html", {"form": form, "username": data["username"],
                                                            "email": data["email"]})


def _profile(request, **extra):
    user = request.user
    return render(request, "accounts/profile.html", {
        "lesion_count": user.lesions.count(),
        "submission_count": user.submissions.count(),
        # Reading only: a token is created by an explicit POST, never as a side effect of a GET.
        "tokens": selectors.active_api_tokens(user),
        "consent": services.current_consent(user),
        "token_ttl_days": settings.API_TOKEN_TTL.days,
        "token_limit": settings.API_TOKENS_PER_USER,
        **extra,
    })


@never_cache  # the page lists the API tokens (and shows a new one once): out of every cache
@login_required
def profile(request):
    return _profile(request)


@never_cache
@require_POST
@login_required
def create_token(request):
    """A new API token. Only its hash is stored, so the key is on this page and nowhere else."""
    token, key = services.issue_api_token(request.user)
    return _profile(request, new_key=key, new_token=token)


@require_POST
@login_required
def revoke_token(request):
    """Revoke one of the caller's tokens (by its stored digest); another person's is a 404."""
    if not services.revoke_api_token(request.user, request.POST.get("digest", "")):
        raise Http404("No such token.")
    messages.success(request, "The token was revoked: clients using it can no longer sign in with it.")
    return redirect("profile")


def _safe_next(request, default):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return default


@never_cache
@login_required
def consent(request):
    """The consent text (version settings.CONSENT_VERSION) and the separate model-improvement opt-in."""
    current = services.current_consent(request.user)
    form = ConsentForm(request.POST or None, initial={"improve_model": current.improve_model if current else False})
    if request.method == "POST" and form.is_valid():
        services.accept_consent(request.user, improve_model=form.cleaned_data["improve_model"], request=request)
        messages.success(request, "Thank you. Your choices are saved; you can change them on your profile.")
        return redirect(_safe_next(request, "diagnosis:upload"))
    return render(request, "accounts/consent.html", {
        "form": form, "current": current, "version": settings.CONSENT_VERSION,
        "next": _safe_next(request, ""),
    })


@require_POST
@login_required
def export_data(request):
    """Download my data: a zip of the photos (decrypted) and a JSON of everything else."""
    archive = services.export_zip(request.user, request=request)
    filename = f"skinsite-data-{timezone.now():%Y%m%d}.zip"
    response = HttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@never_cache
@login_required
def delete_account(request):
    """Confirmation page (GET) and deletion (POST with the password) of the account and all its data."""
    form = DeleteAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        services.delete_account(user, request=request)
        messages.success(request, "Your account, photos and results have been deleted.")
        return redirect("diagnosis:home")
    return render(request, "accounts/delete_account.html", {"form": form})
