"""The app factory: routes, problem details, and the OpenAPI schema that is the API's contract."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from scheduler.api import problems
from scheduler.api.routes import accounts, deliveries, exports, people, stories, system
from scheduler.api.schemas import PROBLEMS


def create_app() -> FastAPI:
    app = FastAPI(title="crosspost", version="1", description="The desk's API: the same service "
                  "functions as the `crosspost` command, checked against each caller's roles and scopes.")
    problems.install(app)
    for module in (system, accounts, stories, deliveries, exports, people):
        app.include_router(module.router, responses=PROBLEMS)
    app.include_router(importlib.import_module("scheduler.api.routes.feeds").router, responses=PROBLEMS)
    importlib.import_module("scheduler.web.app").mount(app)  # by name: faces never import each other
    return app

