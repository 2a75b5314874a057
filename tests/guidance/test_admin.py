"""Staff edit condition entries in the admin; each change is in the audit log."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from guidance.models import Condition

pytestmark = pytest.mark.django_db


def test_admin_edit_is_saved_and_audited(admin_client):
    condition = Condition.objects.get(code="df")
    url = reverse("admin:guidance_condition_change", args=[condition.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields}
    data.update(summary="A firm, harmless bump. Edited by staff.", contagious="")
    response = admin_client.post(url, data)
    assert response.status_code == 302, getattr(response, "context", None) and response.context["adminform"].errors
    condition.refresh_from_db()
    assert condition.summary == "A firm, harmless bump. Edited by staff."
    entry = LogEntry.objects.get_for_object(condition).filter(action=LogEntry.Action.UPDATE).latest("timestamp")
    assert "summary" in entry.changes_dict


def test_the_code_cannot_be_changed_once_the_entry_exists(admin_client):
    condition = Condition.objects.get(code="df")
    page = admin_client.get(reverse("admin:guidance_condition_change", args=[condition.pk]))
    assert "code" not in page.context["adminform"].form.fields


def test_non_staff_cannot_open_the_admin(owner_client):
    response = owner_client.get(reverse("admin:guidance_condition_changelist"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
