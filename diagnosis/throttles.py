"""The per-user upload rate (``uploads`` in REST_FRAMEWORK's rates), for the API and the web form."""

from skinsite.throttling import UserRateThrottle


class UploadRateThrottle(UserRateThrottle):
    """Photo uploads per user, on top of the general user rate. One count for web and API."""

    scope = "uploads"
