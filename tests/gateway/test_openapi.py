"""/openapi.json documents every HTTP route of the app and nothing else; /docs renders it without a network."""
from __future__ import annotations

import json
import re

from starlette.routing import Mount, Route, WebSocketRoute

from gateway.app import ROUTES
from gateway.openapi import OPERATIONS, document


def _routes() -> set[tuple[str, str]]:
    found = set()
    for route in ROUTES:
        if isinstance(route, Route):
            found |= {(route.path, m.lower()) for m in route.methods if m != "HEAD"}
        elif isinstance(route, Mount):
            found.add((route.path + "/", "get"))  # the static files under it
        elif isinstance(route, WebSocketRoute):
            found.add((route.path, "get"))  # described on its plain-HTTP GET
    return found


def test_every_route_is_documented_and_nothing_else():
    documented = set(OPERATIONS)
    assert _routes() - documented == set(), "add these routes to gateway/openapi.py OPERATIONS"
    assert documented - _routes() == set(), "these documented routes do not exist"


def test_the_document_is_valid_openapi_with_path_parameters_declared():
    doc = json.loads(json.dumps(document()))
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
            assert op["responses"]["200"]["content"], (path, method)


def test_served_and_the_page_loads_nothing_from_elsewhere(client):
    doc = client.get("/openapi.json").json()
    assert "/v1/audio/transcriptions" in doc["paths"]
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no CDN, no remote script or style
