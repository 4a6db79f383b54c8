"""The hand-written OpenAPI document and the routes agree, both ways."""

from __future__ import annotations

from openapi_spec_validator import validate

from photostore.api.app import routes
from photostore.api.openapi import openapi_document

# The document and its rendering describe themselves; the web apps' pages and files are not API.
UNDOCUMENTED = {"/openapi.json", "/docs", "/", "/admin", "/assets/{digest}/{path:path}"}


def _route_operations() -> set[tuple[str, str]]:
    ops = set()
    for route in routes():
        path = route.path
        for method in route.methods or ():
            implied = method == "HEAD" and "GET" in (route.methods or ())  # Starlette adds HEAD to GET
            if not implied and path not in UNDOCUMENTED:
                ops.add((path, method.lower()))
    return ops


def _document_operations() -> set[tuple[str, str]]:
    document = openapi_document()
    return {(path, method) for path, methods in document["paths"].items() for method in methods}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    assert _route_operations() == _document_operations()


def test_every_reference_resolves() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas


def test_every_operation_names_its_error_responses() -> None:
    for path, methods in openapi_document()["paths"].items():
        for method, operation in methods.items():
            assert operation["responses"], (path, method)
            if path.startswith("/v1/photos"):
                assert "401" in operation["responses"], (path, method)


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(openapi_document())
