"""Helpers of the profile tests."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import NoMatchFound


def serves(app: FastAPI, route_name: str) -> bool:
    """Whether ``app`` has a route of that name (true once app.py includes the router)."""
    try:
        app.url_path_for(route_name)
    except NoMatchFound:
        return False
    return True
