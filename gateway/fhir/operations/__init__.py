"""FHIR operations: one module per operation, registered in one table (`OPERATIONS`).

Each module exposes a thin async handler and a typed `run_…` function that does the work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    name: str  # without the leading $
    handler: Handler
    types: tuple[str, ...] = ()  # empty: system level
    instance: bool = False
    type_level: bool = False
    methods: tuple[str, ...] = ("GET", "POST")
    definition: str = ""

    def capability(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "types": self.types,
            "definition": self.definition or f"http://hl7.org/fhir/OperationDefinition/{self.name}",
        }


OPERATIONS: list[Operation] = []


def register(op: Operation) -> Operation:
    OPERATIONS.append(op)
    return op
