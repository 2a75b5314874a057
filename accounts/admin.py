from auditlog.admin import LogEntryAdmin
from auditlog.filters import CIDFilter, ResourceTypeFilter
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.core.exceptions import ValidationError

from .audit import EVENTS
from .models import Consent, User, username_taken
from .usernames import refuse_mixed_script


class AddUserForm(AdminUserCreationForm):
    """The admin's "add user", held to sign-up's username rules (accounts/usernames.py)."""

    def clean_username(self):
        username = super().clean_username()
        if username:
            refuse_mixed_script(username)
            if username_taken(username):
                raise ValidationError("A user with this username, or one that looks the same, already exists.")
        return username


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    add_form = AddUserForm
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


class EventFilter(admin.SimpleListFilter):
    """The named security events (accounts/audit.py), stored in ``additional_data['event']``."""

    title = "event"
    parameter_name = "event"

    def lookups(self, request, model_admin):
        return list(EVENTS.items())

    def queryset(self, request, queryset):
        return queryset.filter(additional_data__event=self.value()) if self.value() else queryset


admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class AuditLogEntryAdmin(LogEntryAdmin):
    """auditlog's log browser, with the event named: log-ins, consent, exports, deletions, admin looks.

    Without it each showed as a bare "access" entry and searching "login" or "export" found nothing.
    """

    list_display = ["created", "resource_url", "action", "event", "msg_short", "user_url", "cid_url"]
    search_fields = [*LogEntryAdmin.search_fields, "additional_data__event"]
    list_filter = ["action", EventFilter, ResourceTypeFilter, CIDFilter]

    @admin.display(description="event")
    def event(self, entry):
        name = (entry.additional_data or {}).get("event", "")
        return EVENTS.get(name, name)
