"""What the stream tests share: opening a socket on the routed application, reading frames with bounded
waits, holding every frame to the protocol's exact shape, and driving REST and the engine from a test.

``assert_wire_frame`` checks a frame three ways:

* against the reference document's ``WsMessage`` schema, made strict: no property the document does not
  name, on the frame or on the order / position / account / trade / quote / bar inside it;
* against the ``tektii`` SDK's own event models (what a real strategy parses; it rejects JSON numbers
  where a decimal string belongs);
* by the wire conventions of PROTOCOL §0: absent optionals are omitted rather than ``null``, and every
  timestamp is UTC with a ``Z``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tektii.models import GatewayEvent

from orders.engine import BrokerLink, engine_tick
from tests.reference_schema import SPEC_URI, format_checker, spec
from tradingdesk.asgi import application

J = "application/json"
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("10.0.0.9", 50000)
MARKET_KINDS = ("ping", "quote", "candle")
CONNECT_TIMEOUT = 5                # generous: the suite may share a loaded machine
_STRICT_OBJECTS = ("Order", "Position", "Account", "Trade", "Quote", "Bar")
_sdk_events: TypeAdapter = TypeAdapter(GatewayEvent)


# -- shape ---------------------------------------------------------------------------------------------

@cache
def _strict_ws_messages() -> dict[str, Draft202012Validator]:
    """One strict validator per server message type, keyed by ``type``."""
    document = copy.deepcopy(spec())
    schemas = document["components"]["schemas"]
    for name in _STRICT_OBJECTS:
        schemas[name]["additionalProperties"] = False
    branches = schemas["WsMessage"]["oneOf"]
    for branch in branches:
        branch["additionalProperties"] = False
        # the protocol's top-level event_id (PROTOCOL §7.1, a string); ours is the outbox id (realtime/resume.py)
        branch["properties"]["event_id"] = {"type": "string", "pattern": "^[1-9][0-9]*$"}
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(document, default_specification=DRAFT202012))
    return {branch["properties"]["type"]["enum"][0]: Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/WsMessage/oneOf/{index}"}, registry=registry,
        format_checker=format_checker) for index, branch in enumerate(branches)}


def _nulls_and_timestamps(value: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key == "details":
                continue                   # free-form by the protocol
            if item is None:
                problems.append(f"{where} is null (absent optionals must be omitted)")
            elif key in ("timestamp", "created_at", "updated_at", "opened_at", "stale_since") and not (
                    isinstance(item, str) and item.endswith("Z")):
                problems.append(f"{where} = {item!r} is not UTC with a Z")
            problems.extend(_nulls_and_timestamps(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(_nulls_and_timestamps(item, f"{path}[{index}]"))
    return problems


def assert_wire_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """The frame is one of the protocol's server messages, in its exact shape. Returns it."""
    validator = _strict_ws_messages().get(frame.get("type"))
    assert validator is not None, f"not a server message type of the protocol: {frame}"
    errors = sorted(validator.iter_errors(frame), key=str)
    assert not errors, f"{frame['type']} frame breaks the reference schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors) + f"\n{frame}"
    _sdk_events.validate_python(frame)
    problems = _nulls_and_timestamps(frame)
    assert not problems, f"{frame.get('type')} frame: " + "; ".join(problems)
    return frame


# -- sockets -------------------------------------------------------------------------------------------

def stream(*, headers: tuple = (), client: tuple[str, int] = LOOPBACK, path: str = "/v1/ws") -> WebsocketCommunicator:
    """A socket on the routed application (``tradingdesk.asgi``), as from ``client``; with a ``Host`` header,
    as every real handshake has (``testserver`` unless one is given)."""
    headers = list(headers)
    if not any(name.lower() == b"host" for name, _ in headers):
        headers.insert(0, (b"host", b"testserver"))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    communicator.scope["client"] = client
    return communicator


async def connected_stream(**kwargs: Any) -> WebsocketCommunicator:
    communicator = stream(**kwargs)
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    return communicator


async def receive_frame(communicator: WebsocketCommunicator, *, timeout: float = 3) -> dict[str, Any]:
    """The next frame, checked against the protocol."""
    return assert_wire_frame(json.loads(await communicator.receive_from(timeout=timeout)))


async def frames_until(communicator: WebsocketCommunicator, done: Callable[[dict], bool], *, timeout: float = 5,
                       ignore: tuple[str, ...] = MARKET_KINDS) -> list[dict[str, Any]]:
    """Every frame (except the ``ignore``d kinds) up to and including the first one ``done`` accepts."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; frames seen: {[describe(f) for f in seen]}"
        frame = await receive_frame(communicator, timeout=remaining)
        if frame["type"] in ignore:
            continue
        seen.append(frame)
        if done(frame):
            return seen


async def next_frame(communicator: WebsocketCommunicator, kind: str, event: str | None = None, *,
                     timeout: float = 5) -> dict[str, Any]:
    """The next frame of ``kind`` (and ``event``), skipping others."""
    frames = await frames_until(communicator, lambda f: f["type"] == kind and event in (None, f.get("event")),
                                timeout=timeout, ignore=())
    return frames[-1]


async def frames_within(communicator: WebsocketCommunicator, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives in the next ``seconds`` (waiting without a receive timeout, which would
    cancel the application)."""
    await asyncio.sleep(seconds)
    frames = []
    while not communicator.output_queue.empty():
        frames.append(await receive_frame(communicator))
    return frames


async def close_code(communicator: WebsocketCommunicator, *, timeout: float = 5) -> int:
    """Read past any frames until the server closes the socket; returns the close code."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the server did not close the socket in time"
        message = await communicator.receive_output(timeout=remaining)
        if message["type"] == "websocket.close":
            return message.get("code", 1000)
        assert_wire_frame(json.loads(message["text"]))


class SlowReader(WebsocketCommunicator):
    """A client whose socket buffer holds ``capacity`` messages: once it is full, the server's send waits
    until the client reads — what a real socket does to a client that stopped reading."""

    def __init__(self, *args: Any, capacity: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capacity = capacity
        self._bounded: asyncio.Queue | None = None

    @property
    def output_queue(self) -> asyncio.Queue:
        if self._bounded is None:
            self._bounded = asyncio.Queue(maxsize=self.capacity)
        return self._bounded


def describe(frame: dict[str, Any]) -> str:
    """``order ORDER_FILLED <id>`` — for readable assertions on sequences."""
    body = frame.get("order") or frame.get("position") or frame.get("trade") or {}
    return " ".join(str(part) for part in (frame["type"], frame.get("event") or frame.get("code"), body.get("id"))
                    if part)


def is_order_event(event: str, order_id: str) -> Callable[[dict], bool]:
    return lambda f: f["type"] == "order" and f["event"] == event and f["order"]["id"] == order_id


# -- driving the desk ----------------------------------------------------------------------------------

async def place(client, *, expect: int = 201, **fields: Any) -> dict[str, Any]:
    """POST /v1/orders (a MARKET buy of 10 AAPL unless told otherwise); returns the handle."""
    body = {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET"}
    body.update({k: str(v) if not isinstance(v, str | bool) else v for k, v in fields.items() if v is not None})
    response = await database_sync_to_async(client.post)("/v1/orders", body, content_type=J)
    assert response.status_code == expect, response.content
    return response.json()


async def rest_get(client, path: str) -> Any:
    response = await database_sync_to_async(client.get)(path)
    assert response.status_code == 200, response.content
    return response.json()


async def tick(account, broker, *, link: BrokerLink | None = None) -> None:
    """One engine tick for ``account`` (match, apply fills, place legs), as ``run_engine`` does."""
    await database_sync_to_async(engine_tick)(accounts=[account], broker=broker, link=link)
