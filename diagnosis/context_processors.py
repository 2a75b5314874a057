"""Template context for every page: the logged-in user's spots that are due for a new photo."""

from django.utils.functional import SimpleLazyObject

from .reminders import due_lesions_for

BANNER_LIMIT = 5


def reminders(request):
    """``due_reminders``: the user's own lesions past their reminder date (queried only when shown)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"due_reminders": []}
    return {"due_reminders": SimpleLazyObject(lambda: list(due_lesions_for(user)[:BANNER_LIMIT]))}
