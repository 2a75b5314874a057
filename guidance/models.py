"""The condition knowledge base: one editable entry per class the model knows.

Rows are loaded from ``data/conditions.json`` by a data migration and edited in
the admin afterwards (auditlog records each change). The text is general health
information written in the project's own words; ``sources`` names the public
pages it follows.
"""

from django.db import models
from django.utils import timezone

from .triage import SOON, TIER_CHOICES, TIERS, URGENT


class Category(models.TextChoices):
    BENIGN = "benign", "Benign (not cancer)"
    PRECANCEROUS = "precancerous", "Pre-cancerous"
    CANCER = "cancer", "Skin cancer"
    INFLAMMATORY = "inflammatory", "Inflammatory"
    INFECTION = "infection", "Infection"
    OTHER = "other", "Other"


class ConditionQuerySet(models.QuerySet):
    def for_codes(self, codes):
        return self.filter(code__in=list(codes))


class Condition(models.Model):
    # Text fields that every entry must fill in (see ``missing_fields``).
    REQUIRED_TEXT = ("name", "summary", "description", "appearance", "causes_and_risk_factors",
                     "usual_treatments", "contagious_note", "red_flags", "sources")

    code = models.CharField(max_length=20, unique=True, help_text="The model's class code (ml/classes.py).")
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=20, choices=Category.choices)
    summary = models.TextField(help_text="Two or three sentences, shown on the result page.")
    description = models.TextField()
    appearance = models.TextField("how it typically looks")
    causes_and_risk_factors = models.TextField()
    usual_treatments = models.TextField()
    contagious = models.BooleanField(default=False)
    contagious_note = models.TextField(help_text="Whether and how it spreads, in a sentence or two.")
    red_flags = models.TextField(help_text="One warning sign per line: signs that mean 'see a doctor now'.")
    urgency = models.CharField(
        "usual urgency", max_length=12, choices=TIER_CHOICES,
        help_text="How soon to see someone when this is the clear result and nothing else worries. "
                  "Shown on the condition page; the result page's tier comes from guidance/triage.py.")
    sources = models.TextField(help_text="One public page per line: a title, then its URL.")
    synonyms = models.TextField(
        blank=True, help_text="Other words people use for it, one per line (the symptom assistant recognises "
                              "these as well as the name's parts).")
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConditionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.code})"

    @property
    def urgency_title(self):
        return TIERS.get(self.urgency, self.urgency)

    def red_flag_list(self):
        return [line.strip() for line in self.red_flags.splitlines() if line.strip()]

    def source_list(self):
        """``[(title, url or "")]``: a line's last word is its URL when it starts with http(s)://."""
        sources = []
        for line in self.sources.splitlines():
            line = line.strip()
            if not line:
                continue
            title, _, last = line.rpartition(" ")
            if last.startswith(("https://", "http://")) and title:
                sources.append((title.strip(), last))
            else:
                sources.append((line, ""))
        return sources

    def synonym_list(self):
        return [line.strip() for line in self.synonyms.splitlines() if line.strip()]

    def missing_fields(self):
        """Names of the required parts that are empty; an entry is complete when this is empty."""
        missing = [name for name in self.REQUIRED_TEXT if not str(getattr(self, name) or "").strip()]
        if self.category not in Category.values:
            missing.append("category")
        if self.urgency not in TIERS:
            missing.append("urgency")
        if self.sources.strip() and not any(url for _title, url in self.source_list()):
            missing.append("sources (no URL)")
        return missing


class AssistantConversation(models.Model):
    """The symptom assistant's conversation about one result (guidance/assistant.py).

    ``state`` is the engine's JSON (answers, skipped questions); the answers feed the triage
    of this submission (selectors.submission_triage). Deleted with the submission.
    """

    submission = models.OneToOneField("diagnosis.Submission", on_delete=models.CASCADE,
                                      related_name="assistant_conversation")
    state = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        # No health information here: auditlog copies this into its entries.
        return f"Assistant conversation #{self.pk}"


class AssistantMessage(models.Model):
    class Role(models.TextChoices):
        PERSON = "person", "Person"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(AssistantConversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    # The tier after this message, for the assistant's replies: the transcript shows where advice changed.
    tier = models.CharField(max_length=12, choices=TIER_CHOICES, blank=True)
    understood = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.get_role_display()} message #{self.pk}"


class ReferralContact(models.Model):
    """Where to get seen: configured by staff in the admin, shown with the tiers it is meant for.

    Nothing is looked up outside: the page shows exactly what staff entered.
    """

    class Kind(models.TextChoices):
        GP = "gp", "GP / family doctor"
        DERMATOLOGY = "dermatology", "Dermatology clinic"
        SKIN_CANCER = "skin_cancer", "Skin cancer clinic"
        URGENT_CARE = "urgent_care", "Urgent care"
        PHARMACY = "pharmacy", "Pharmacy"
        OTHER = "other", "Other"

    name = models.CharField(max_length=150)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    phone = models.CharField(max_length=40, blank=True)
    booking_url = models.URLField("booking link", blank=True)
    address = models.TextField(blank=True)
    region = models.CharField(max_length=100, blank=True, help_text="Where it serves, e.g. a city or county.")
    notes = models.TextField(blank=True, help_text="Opening hours, referral needed, languages...")
    show_for_urgent = models.BooleanField(f"show with '{TIERS[URGENT]}'", default=True)
    show_for_soon = models.BooleanField(f"show with '{TIERS[SOON]}'", default=True)
    show_for_routine = models.BooleanField(default=False)
    show_for_self_care = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self):
        return self.name

    def shown_for(self, tier):
        return getattr(self, f"show_for_{tier}", False)
