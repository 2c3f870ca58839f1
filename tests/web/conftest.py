"""The case-management APIs mounted on the real app, with one client for FHIR and the JSON APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gateway.fhir.services import Services
from gateway.web.case_management import install


@pytest.fixture
async def api(app: FastAPI, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    install(app, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
