"""Routes are tried in the order the app includes them, and the first that matches a path
takes it (a path parameter matches any segment: ``/orders/{order_id}`` would take
``/orders/history``). The money routers come first, since every payment's request is
matched against the routes before its own (qianbao/app.py); this makes sure no route is
hidden behind an earlier one, whatever the order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, Route

from qianbao.app import create_app
from qianbao.settings import Settings


def routes_in_order(routes: list[BaseRoute]) -> Iterator[Route]:
    """Every route as the router tries them, included routers opened in place."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from routes_in_order(included.routes)
        elif isinstance(route, Route):
            yield route


def sample_path(template: str) -> str:
    """A path the template matches: each parameter an unlikely word."""
    return re.sub(r"\{[^}]+\}", "p4r4m", template)


def first_taker(app: FastAPI, method: str, path: str) -> Route | None:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "app": app}
    for route in routes_in_order(app.router.routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def test_no_route_is_hidden_behind_an_earlier_one(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'q.db'}", secret_key="k" * 32))
    hidden = []
    for route in routes_in_order(app.router.routes):
        for method in sorted(route.methods or {"GET"}):
            taker = first_taker(app, method, sample_path(route.path))
            if taker is not None and taker.path != route.path:
                hidden.append(f"{method} {route.path} is taken by {taker.path}")
    assert hidden == []


def test_a_payment_is_matched_among_the_first_routes(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'q.db'}", secret_key="k" * 32))
    order = [route.path for route in routes_in_order(app.router.routes)]
    assert order.index("/api/v1/orders/{order_id}/pay") < 60
