"""A custom user from the first migration, so fields can be added later without pain."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    email = models.EmailField("email address", unique=True)

    class Meta:
        db_table = "accounts_user"


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
