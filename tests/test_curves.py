"""A model's training curves over HTTP: GET /v1/models/{name}/curves."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from .helpers import assert_error

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("name", "fixture"), [("rnn-small", "rnn_model"), ("tr-small", "translator_model")])
def test_curves_are_the_folders_png(client: TestClient, request: pytest.FixtureRequest, name: str,
                                    fixture: str) -> None:
    from PIL import Image

    folder: Path = request.getfixturevalue(fixture)
    r = client.get(f"/v1/models/{name}/curves")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_MAGIC) and r.content == (folder / "training_curve.png").read_bytes()
    with Image.open(io.BytesIO(r.content)) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_no_curve_and_no_model(client: TestClient) -> None:
    for name in ("bow-small", "w2v-small"):  # a baseline and a vectors model: no per-epoch history
        err = assert_error(client.get(f"/v1/models/{name}/curves"), 404, "no_training_curve", repr(name))
        assert err["details"] == {"model": name}
    assert_error(client.get("/v1/models/no-such-model/curves"), 404, "model_not_found", "'no-such-model'")
    # A name that is not a loaded model never reaches the filesystem.
    assert client.get("/v1/models/..%2Frnn-small/curves").status_code == 404


def test_openapi_documents_the_png(client: TestClient) -> None:
    route = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/curves"]["get"]
    assert set(route["responses"]["200"]["content"]) == {"image/png"}
    assert route["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
