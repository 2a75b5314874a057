"""A client generated from /api/schema/ with openapi-python-client runs the whole API flow, as generated.

The schema is fetched from the live server, the client is generated offline into a temporary folder
(about a second) and imported, and then only the generated functions and models are used: token,
consent, a lesion, the photo upload, polling until the result is final, the ranked predictions, the
symptom assistant, the doctor's PDF report, the data export and the deletion. The generated models
parse every answer strictly (a missing required field, an unknown enum value or a null the schema
does not allow raises), so this also checks the responses against the schema. Error answers (403
before consent, 404 after deletion) must parse as the documented error body.

The analysis runs on the real worker (the filesystem broker under plain pytest, Redis on CI), as in
test_api_over_http.py.
"""

import importlib
import io
import json
import pkgutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from http import HTTPStatus

import pytest

from tests.integration.realworker import TASK_TIMEOUT

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PACKAGE = "skinsite_api_client"

# No formatter run (ruff is not needed to use the client), and the binary answers (photo, heatmap,
# PDF, zip) read as the generator's File type: it only knows application/octet-stream as binary.
CONFIG = {
    "post_hooks": [],
    "content_type_overrides": {media_type: "application/octet-stream" for media_type in
                               ("image/jpeg", "image/png", "application/pdf", "application/zip")},
}


@pytest.fixture
def api(live_server, tmp_path):
    """The generated package, imported whole (every module must import), then forgotten again."""
    with urllib.request.urlopen(f"{live_server.url}/api/schema/?format=json", timeout=30) as response:
        (tmp_path / "schema.json").write_bytes(response.read())
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    generated = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(tmp_path / "schema.json"),
         "--config", str(tmp_path / "config.json"), "--output-path", str(tmp_path / PACKAGE), "--meta", "none",
         "--fail-on-warning"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert generated.returncode == 0, generated.stdout[-4000:] + generated.stderr[-4000:]
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module(PACKAGE)
        failed = {}
        for module in pkgutil.walk_packages(package.__path__, f"{PACKAGE}."):
            try:
                importlib.import_module(module.name)
            except Exception as error:  # noqa: BLE001 - report every module that does not import
                failed[module.name] = repr(error)
        assert not failed, failed
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _op(name):
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def test_generated_client_runs_the_whole_flow(api, use_tiny_model, live_server, celery_worker, knowledge_base,
                                              new_user, password, make_image):
    from skinsite_api_client import AuthenticatedClient, Client
    from skinsite_api_client.models import (
        AssistantMessageInputRequest,
        AuthTokenRequest,
        ConsentAcceptRequest,
        Error,
        LesionRequest,
        SubmissionCreateRequest,
    )
    from skinsite_api_client.types import File

    # Token: no credentials needed to ask for one.
    answer = _op("auth.v1_auth_token_create").sync_detailed(
        client=Client(base_url=live_server.url), body=AuthTokenRequest(username=new_user.username, password=password))
    assert answer.status_code == HTTPStatus.OK, answer.content
    client = AuthenticatedClient(base_url=live_server.url, token=answer.parsed.token, prefix="Token", timeout=30)

    def photo():
        return File(payload=io.BytesIO(make_image()), file_name="spot.jpg", mime_type="image/jpeg")

    upload = _op("submissions.v1_submissions_create")
    # Before consent an upload is refused with the documented error body.
    refused = upload.sync_detailed(client=client, body=SubmissionCreateRequest(image=photo()))
    assert refused.status_code == HTTPStatus.FORBIDDEN, refused.content
    assert isinstance(refused.parsed, Error) and "consent" in refused.parsed.detail.lower()

    consent = _op("account.v1_consent_create").sync_detailed(
        client=client, body=ConsentAcceptRequest(accept=True, improve_model=False))
    assert consent.status_code == HTTPStatus.CREATED, consent.content
    assert consent.parsed.accepted is True and consent.parsed.improve_model is False

    lesion = _op("lesions.v1_lesions_create").sync_detailed(client=client, body=LesionRequest(name="Left forearm"))
    assert lesion.status_code == HTTPStatus.CREATED, lesion.content
    lesion = lesion.parsed

    created = upload.sync_detailed(client=client, body=SubmissionCreateRequest(image=photo(), lesion=lesion.uuid))
    assert created.status_code == HTTPStatus.CREATED, created.content
    submission = created.parsed
    assert submission.lesion == lesion.uuid

    # Poll until the result is final; while queued `guidance` is null and must parse as such.
    retrieve = _op("submissions.v1_submissions_retrieve")
    deadline = time.monotonic() + TASK_TIMEOUT
    while not submission.is_final and time.monotonic() < deadline:
        assert submission.guidance is None
        time.sleep(0.5)
        submission = retrieve.sync(submission.uuid, client=client)
    assert submission.status.value == "done", submission

    # Predictions: every class ranked, the first four as top_predictions, the guidance filled in.
    assert [p.rank for p in submission.predictions] == list(range(1, 13))
    assert [p.code for p in submission.top_predictions] == [p.code for p in submission.predictions[:4]]
    assert submission.guidance is not None and submission.guidance.tier.value

    # The symptom assistant: its first question, then an answer to it.
    conversation = _op("assistant.v1_submissions_assistant_retrieve").sync(submission.uuid, client=client)
    assert conversation.question is not None, conversation
    reply = _op("assistant.v1_submissions_assistant_create").sync_detailed(
        submission.uuid, client=client, body=AssistantMessageInputRequest(message=conversation.question.options[0].value))
    assert reply.status_code == HTTPStatus.OK, reply.content
    assert reply.parsed.reply.understood and reply.parsed.reply.text == reply.parsed.messages[-1].text
    assert [message.role.value for message in reply.parsed.messages[-2:]] == ["person", "assistant"]

    report = _op("lesions.v1_lesions_report_retrieve").sync_detailed(lesion.uuid, client=client)
    assert report.status_code == HTTPStatus.OK and report.parsed.payload.read(5) == b"%PDF-"

    export = _op("account.v1_export_retrieve").sync_detailed(client=client)
    assert export.status_code == HTTPStatus.OK
    names = zipfile.ZipFile(export.parsed.payload).namelist()
    assert "data.json" in names and f"photos/{submission.uuid}.jpg" in names

    deleted = _op("submissions.v1_submissions_destroy").sync_detailed(submission.uuid, client=client)
    assert deleted.status_code == HTTPStatus.NO_CONTENT
    gone = retrieve.sync_detailed(submission.uuid, client=client)
    assert gone.status_code == HTTPStatus.NOT_FOUND and isinstance(gone.parsed, Error)
