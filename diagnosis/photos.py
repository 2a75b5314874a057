"""Serve a stored photo privately: the caller has already checked ownership.

Not cached anywhere: skinsite.middleware.PrivateResponsesMiddleware sends
``Cache-Control: private, no-store`` to every signed-in caller.
"""

from django.http import FileResponse


def private_photo_response(field_file) -> FileResponse:
    response = FileResponse(field_file.open("rb"), content_type="image/jpeg")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = "inline"
    return response
