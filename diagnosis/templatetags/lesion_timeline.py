"""Template tags for the "changed" badges on the lesion pages (the views hand over owner-scoped lesions)."""

from django import template

from .. import timeline

register = template.Library()


@register.simple_tag
def changed_lesion_pks(lesions):
    """The pks of those lesions whose latest analysed photo changed since the one before (two queries)."""
    return {pk for pk, found in timeline.latest_changes(lesions).items() if found}


@register.simple_tag
def latest_lesion_changes(lesion):
    """Why the lesion's latest analysed photo counts as changed (empty: it does not)."""
    return timeline.latest_changes([lesion]).get(lesion.pk, [])
