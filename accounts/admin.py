from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Consent, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    # E-mail is unique and required on our model; ask for it when an admin adds a user,
    # otherwise the second user added without one collides on the empty string.
    add_fieldsets = (
        (None, {
            "classes": ("wide",),
            "fields": ("username", "email", "usable_password", "password1", "password2"),
        }),
    )


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    """Read-only: a consent record is evidence of what the person agreed to."""

    list_display = ["user", "version", "improve_model", "accepted_at"]
    list_filter = ["version", "improve_model"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
