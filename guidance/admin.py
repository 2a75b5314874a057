from django.contrib import admin

from diagnosis.audit import log_admin_access

from .models import AssistantConversation, AssistantMessage, Condition, ReferralContact


@admin.register(Condition)
class ConditionAdmin(admin.ModelAdmin):
    """Staff edit the knowledge base here; every change is in the audit log (audit.py)."""

    list_display = ["name", "code", "category", "urgency", "contagious", "updated_at"]
    list_filter = ["category", "urgency", "contagious"]
    search_fields = ["code", "name", "summary"]
    readonly_fields = ["updated_at"]
    fieldsets = [
        (None, {"fields": ["code", "name", "category", "urgency", "summary", "synonyms"]}),
        ("About the condition", {"fields": ["description", "appearance", "causes_and_risk_factors",
                                            "usual_treatments", "contagious", "contagious_note", "red_flags"]}),
        ("Sources", {"fields": ["sources", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The code ties the entry to the model's classes: fixed once the entry exists.
        return [*self.readonly_fields, "code"] if obj is not None else self.readonly_fields


@admin.register(ReferralContact)
class ReferralContactAdmin(admin.ModelAdmin):
    """Where people are told to get seen (result page and API, with the tiers ticked); audit-logged."""

    list_display = ["name", "kind", "region", "phone", "show_for_urgent", "show_for_soon", "active", "order"]
    list_editable = ["active", "order"]
    list_filter = ["kind", "active", "region"]
    search_fields = ["name", "region", "address"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "region", "active", "order"]}),
        ("How to get in touch", {"fields": ["phone", "booking_url", "address", "notes"]}),
        ("Shown with the advice", {"fields": ["show_for_urgent", "show_for_soon", "show_for_routine",
                                              "show_for_self_care"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "booking_url":
            kwargs["assume_scheme"] = "https"  # "clinic.example.org/book" means https, not http
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class AssistantMessageInline(admin.TabularInline):
    model = AssistantMessage
    fields = ["created_at", "role", "text", "tier", "understood"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AssistantConversation)
class AssistantConversationAdmin(admin.ModelAdmin):
    """Read-only: the conversation is the person's own record; staff may look (each look is logged)."""

    list_display = ["__str__", "submission", "created_at", "updated_at"]
    readonly_fields = ["submission", "state", "created_at", "updated_at"]
    inlines = [AssistantMessageInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        log_admin_access(request, obj)  # like the other health-data admins
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)
