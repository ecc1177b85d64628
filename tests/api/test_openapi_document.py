"""Our OpenAPI document is valid OpenAPI: every ``$ref`` resolves and every schema is well formed, so code
generators and the interactive docs read it. It also documents what a client needs to walk the lists."""

from __future__ import annotations

import json

from openapi_spec_validator import validate


def document(client) -> dict:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_openapi_document_validates(client, db):
    validate(document(client))


def test_every_reference_resolves(client, db):
    spec = document(client)
    text = json.dumps(spec)
    names = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    assert names <= set(spec["components"]["schemas"]), names - set(spec["components"]["schemas"])


def test_list_paging_is_documented(client, db):
    paths = document(client)["paths"]
    for path in ("/v1/orders", "/v1/orders/history", "/v1/trades"):
        operation = paths[path]["get"]
        assert {"limit", "cursor", "since", "until"} <= {p["name"] for p in operation["parameters"]}, path
        assert "X-Next-Cursor" in operation["responses"]["200"]["headers"], path


def test_refusals_at_the_edge_are_documented(client, db):
    responses = document(client)["paths"]["/v1/orders"]["post"]["responses"]
    assert {"403", "413", "415"} <= set(responses)
