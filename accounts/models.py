"""A custom user from the first migration, so fields can be added later without pain."""

from django.contrib.auth.models import AbstractUser
from django.db import models

from .usernames import skeleton


class User(AbstractUser):
    email = models.EmailField("email address", unique=True)
    # The username with case and look-alike letters folded (accounts/usernames.py): a new name whose
    # skeleton exists is taken, so "alıce" cannot sign up beside "alice". Kept by save().
    username_skeleton = models.CharField(max_length=600, db_index=True, editable=False, default="")

    class Meta:
        db_table = "accounts_user"

    def set_unusable_password(self):
        super().set_unusable_password()
        self._credentials_changed = True

    def save(self, *args, **kwargs):
        # A new password (change, reset, the admin, `changepassword`) ends every API token: a token
        # taken with the old password must not outlive it. ``_password`` is set by set_password() and
        # cleared by save(); Django's own hash upgrade at log-in clears it before saving, so a mere
        # re-hash of the same password revokes nothing. Sessions are ended by Django itself (the
        # session keeps a hash of the password), except the one update_session_auth_hash() keeps.
        credentials_changed = self.pk is not None and (
            self._password is not None or getattr(self, "_credentials_changed", False))
        self.username_skeleton = skeleton(self.username)
        if kwargs.get("update_fields") is not None and "username" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "username_skeleton"}
        super().save(*args, **kwargs)
        if credentials_changed:
            self._credentials_changed = False
            self.auth_token_set.all().delete()


def username_taken(username: str) -> bool:
    """Whether ``username``, or a name that differs from it only by case or look-alike letters, exists."""
    return User.objects.filter(
        models.Q(username__iexact=username) | models.Q(username_skeleton=skeleton(username))).exists()


class ConsentQuerySet(models.QuerySet):
    def current(self, user):
        """The user's latest acceptance of the consent version in force, or None."""
        from django.conf import settings

        return self.filter(user=user, version=settings.CONSENT_VERSION).order_by("-accepted_at", "-pk").first()


class Consent(models.Model):
    """One acceptance of the consent text. Rows are only added: they are the record of what was agreed."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="consents")
    version = models.PositiveIntegerField()
    improve_model = models.BooleanField(
        "photos may be used to improve the model", default=False,
        help_text="A separate, optional choice; uploading does not depend on it.",
    )
    accepted_at = models.DateTimeField(auto_now_add=True)

    objects = ConsentQuerySet.as_manager()

    class Meta:
        ordering = ["-accepted_at"]

    def __str__(self):
        return f"{self.user} accepted v{self.version} at {self.accepted_at:%Y-%m-%d %H:%M}"
