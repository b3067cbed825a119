"""The published WebSocket protocol (docs/asyncapi.yaml), for tests: load it, check events against it.

``asyncapi-3.0.0.schema.json`` beside this file is the AsyncAPI 3.0.0 JSON Schema as the AsyncAPI
initiative publishes it (``schemas/3.0.0-without-$id.json`` of the npm package
``@asyncapi/specs`` 6.11.1, Apache-2.0; sha256 in ``ASYNCAPI_SCHEMA_SHA256``), kept here so the
document is checked offline.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0.schema.json")
ASYNCAPI_SCHEMA_SHA256 = "abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f"
DOCUMENT_URI = "urn:chat:asyncapi"


@cache
def document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())


def asyncapi_schema() -> dict[str, Any]:
    raw = ASYNCAPI_SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ASYNCAPI_SCHEMA_SHA256, "the vendored AsyncAPI schema was changed"
    return json.loads(raw)


def operation_messages(action: str) -> dict[str, dict[str, Any]]:
    """The component messages of the document's ``send`` or ``receive`` operations, by their ``name``."""
    doc = document()
    found: dict[str, dict[str, Any]] = {}
    for operation in doc["operations"].values():
        if operation["action"] != action:
            continue
        for ref in operation["messages"]:
            channel_message = resolve(ref["$ref"])
            component = resolve(channel_message["$ref"])
            found[component["name"]] = component
    return found


def resolve(ref: str) -> Any:
    """A local JSON pointer (``#/a/b``) of the document."""
    assert ref.startswith("#/"), ref
    node: Any = document()
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@cache
def _validators(action: str) -> dict[str, Draft7Validator]:
    registry = Registry().with_resource(DOCUMENT_URI, Resource(contents=document(), specification=DRAFT7))
    validators = {}
    for name, message in operation_messages(action).items():
        payload = message["payload"]
        assert set(payload) == {"$ref"}, f"{name}: payloads are references to components/schemas"
        schema = {"$ref": DOCUMENT_URI + payload["$ref"]}
        validators[name] = Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)
    return validators


def matching_messages(event: Any, action: str = "send") -> list[str]:
    """The names of the document's messages (of ``action``) whose payload schema ``event`` matches."""
    return [name for name, validator in _validators(action).items() if validator.is_valid(event)]


def check_event(event: Any) -> str:
    """The one server-to-client message ``event`` matches; AssertionError (with the reasons) otherwise."""
    matches = matching_messages(event)
    if len(matches) == 1:
        return matches[0]
    reasons = {
        name: [error.message for error in validator.iter_errors(event)][:3]
        for name, validator in _validators("send").items()
        if name == (event.get("type") if isinstance(event, dict) else None)
    }
    raise AssertionError(f"event matches {matches or 'no message'} of docs/asyncapi.yaml: {event!r} {reasons}")
