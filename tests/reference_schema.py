"""Check response bodies against the Trading Gateway's published OpenAPI document.

    from tests.reference_schema import assert_conforms
    response = client.get("/v1/orders")
    assert_conforms(response)            # the schema of GET /v1/orders, status 200

The document is ``shared/reference/gateway/openapi.json`` beside the repository (override with
``GATEWAY_OPENAPI``). ``#/components/schemas/...`` references are resolved with ``referencing``;
``date-time`` strings are checked as RFC 3339. One deliberate relaxation: ``ApiError.code`` may be
any string, because our order rejections answer with the seed document's codes
(``INSUFFICIENT_BALANCE`` …) where the gateway says ``ORDER_REJECTED``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(os.environ.get(
    "GATEWAY_OPENAPI", Path(__file__).resolve().parents[2] / "shared" / "reference" / "gateway" / "openapi.json"))
SPEC_URI = "urn:trading-gateway:openapi"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

format_checker = FormatChecker()


@format_checker.checks("date-time", raises=ValueError)
def is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value)
    return True


@cache
def spec() -> dict[str, Any]:
    """The reference document, with ``ApiError.code`` widened to any string."""
    document = copy.deepcopy(json.loads(SPEC_PATH.read_text()))
    document["components"]["schemas"]["ApiError"]["properties"]["code"] = {"type": "string"}
    return document


@cache
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator_for(pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` (a JSON pointer into the document, without ``#``)."""
    return Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry(),
                                format_checker=format_checker)


def component(name: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<name>``."""
    return validator_for("/" + _pointer("components", "schemas", name))


def path_template(path: str) -> str:
    """The document's path template a concrete path belongs to (static paths win over templated ones)."""
    templates = sorted(spec()["paths"], key=lambda t: ("{" in t, -len(t)))
    for template in templates:
        pattern = re.sub(r"\\\{[^/]+?\\\}", r"[^/]+", re.escape(template))
        pattern = re.sub(r"\[\^/\]\+$", r".+", pattern)    # a trailing symbol or id may hold a slash
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} is not a path of the reference document")


def response_validator(method: str, path: str, status: int) -> Draft202012Validator:
    """The validator for one operation's response; error statuses the document does not list for the
    operation are still held to ``ApiError``."""
    template = path_template(path)
    operation = spec()["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not an operation of the reference document"
    declared = operation["responses"].get(str(status))
    if declared is None:
        assert status >= 400, f"{method} {template} does not declare a {status} response"
        return component("ApiError")
    assert "application/json" in declared.get("content", {}), f"{method} {template} {status} declares no JSON body"
    return validator_for("/" + _pointer("paths", template, method.lower(), "responses", str(status), "content",
                                        "application/json", "schema"))


def assert_conforms(response, *, method: str | None = None, path: str | None = None) -> Any:
    """Assert a Django test-client response is JSON matching the reference schema for its request;
    returns the decoded body."""
    method = method or response.request["REQUEST_METHOD"]
    path = path or response.request["PATH_INFO"]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    errors = sorted(response_validator(method, path, response.status_code).iter_errors(body), key=str)
    assert not errors, f"{method} {path} -> {response.status_code} breaks the reference schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
    return body
