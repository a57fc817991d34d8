"""Schemathesis against the OpenAPI schema, in-process, as an admin: no 5xx, and every answer has a
declared status, content type and a body matching its schema. Bounded (a few examples per operation)
to keep the suite fast; CI may raise SCHEMATHESIS_EXAMPLES."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scheduler.api.app import create_app
from tests.api.test_route_matrix import matrix_env  # noqa: F401 - the module's desk, reused

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def admin(matrix_env: Any) -> dict[str, str]:  # noqa: F811
    return matrix_env.as_("admin")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case: Any, admin: dict[str, str]) -> None:
    if case.path == "/auth/login":
        return  # failed logins would lock the admin's address out for the next operations
    case.call_and_validate(headers=admin, checks=CHECKS)
