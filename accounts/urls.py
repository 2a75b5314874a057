from django.urls import include, path

from . import views

urlpatterns = [
    # Django's log-in and reset, with the per-address limits (accounts/limits.py); same paths and names,
    # listed before Django's own so that these answer.
    path("login/", views.LoginView.as_view(), name="login"),
    path("password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    # logout (POST), password_change(_done), password_reset_done, password_reset_confirm/complete
    path("", include("django.contrib.auth.urls")),
    path("signup/", views.signup, name="signup"),
    path("signup/sent/", views.signup_done, name="signup-done"),
    path("signup/confirm/", views.signup_confirm, name="signup-confirm"),
    path("profile/", views.profile, name="profile"),
    path("profile/api-token/", views.create_token, name="api-token"),
    path("profile/api-token/revoke/", views.revoke_token, name="api-token-revoke"),
    path("consent/", views.consent, name="consent"),
    path("export/", views.export_data, name="export-data"),
    path("delete/", views.delete_account, name="delete-account"),
]
