"""The shop as an ASGI application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from marketplace import store, web
from marketplace.qianbao_client import QianbaoClient
from marketplace.settings import Settings
from marketplace.trade_client import TradeClient


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_environment()
    store.create_schema(settings.database)
    app = FastAPI(title="Wholesale Market (demo)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.client = QianbaoClient(settings)
    app.state.trade = TradeClient(settings)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(web.router)
    return app
