"""The API flow over real HTTP: token, multipart upload, polling, ranked result.

Runs against pytest-django's live server (a real WSGI server, like ``runserver``)
and the real worker, so it also catches what Django's test client lets through,
such as a response header that is not a plain ``str``.
"""

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.integration.realworker import TASK_TIMEOUT

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _call(url, *, token=None, form=None, files=None):
    """(status, headers, JSON body) of one request; form fields and files go as multipart."""
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Token {token}"
    if form is not None or files is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (form or {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content, content_type) in (files or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n"
            )
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, error.headers, body.decode(errors="replace")[:2000]


def test_api_upload_is_analysed_and_ranked(use_tiny_model, live_server, celery_worker, user, password, make_image):
    api = f"{live_server.url}/api/v1"

    status, _, body = _call(f"{api}/auth/token/", form={"username": user.username, "password": password})
    assert status == 200, body
    token = body["token"]

    status, headers, body = _call(f"{api}/submissions/", token=token,
                                  files={"image": ("spot.jpg", make_image(), "image/jpeg")})
    assert status == 201, body
    assert headers["Location"] == body["url"]
    assert body["status"] == "queued"

    deadline = time.monotonic() + TASK_TIMEOUT
    while not body["is_final"] and time.monotonic() < deadline:
        time.sleep(0.5)
        status, _, body = _call(body["url"], token=token)
        assert status == 200, body
    assert body["status"] == "done", body
    assert body["model_version"] == "tiny-test-1"
    ranks = [(p["rank"], p["code"]) for p in body["predictions"]]
    assert [rank for rank, _ in ranks] == list(range(1, 13))
    assert len({code for _, code in ranks}) == 12
    assert [p["code"] for p in body["top_predictions"]] == [code for _, code in ranks[:4]]
