"""A JSON parser with the same body limit as Django's forms (``DATA_UPLOAD_MAX_MEMORY_SIZE``).

Django refuses a form body over that limit when it is read through ``request.body`` or
``request.POST``, but DRF's parsers read the stream directly, so a JSON body was bounded only by
the 21 MB request cap (``MAX_REQUEST_BYTES``). No JSON body this API takes is more than a few
kilobytes.
"""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"

    def __init__(self, limit: int):
        super().__init__(f"The request body is too large: the limit for JSON is {limit // 1024} KB.")


class _Bounded:
    """A stream that raises BodyTooLarge once more than ``limit`` bytes have been read from it."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.seen = stream, limit, 0

    def read(self, size=-1):
        chunk = self.stream.read(self.limit + 1 - self.seen if size is None or size < 0 else size)
        self.seen += len(chunk)
        if self.seen > self.limit:
            raise BodyTooLarge(self.limit)
        return chunk


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if limit is not None and declared > limit:
            raise BodyTooLarge(limit)
        return super().parse(_Bounded(stream, limit) if limit is not None else stream, media_type, parser_context)
