from django.contrib import admin

from .models import Condition


@admin.register(Condition)
class ConditionAdmin(admin.ModelAdmin):
    """Staff edit the knowledge base here; every change is in the audit log (audit.py)."""

    list_display = ["name", "code", "category", "urgency", "contagious", "updated_at"]
    list_filter = ["category", "urgency", "contagious"]
    search_fields = ["code", "name", "summary"]
    readonly_fields = ["updated_at"]
    fieldsets = [
        (None, {"fields": ["code", "name", "category", "urgency", "summary"]}),
        ("About the condition", {"fields": ["description", "appearance", "causes_and_risk_factors",
                                            "usual_treatments", "contagious", "contagious_note", "red_flags"]}),
        ("Sources", {"fields": ["sources", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The code ties the entry to the model's classes: fixed once the entry exists.
        return [*self.readonly_fields, "code"] if obj is not None else self.readonly_fields
