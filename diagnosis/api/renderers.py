"""Renderers that let a client ask for a file type (``Accept`` or ``?format=``) on the file endpoints."""

from rest_framework import renderers


class BinaryRenderer(renderers.BaseRenderer):
    """The photo, heatmap, report and export are HttpResponses that never go through a renderer.

    What does go through one is an error (``{"detail": ...}``): it is sent as JSON with its
    Content-Type, as the schema documents every error, instead of an empty body without one.
    """

    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = renderers.JSONRenderer.media_type
        return renderers.JSONRenderer().render(data)
