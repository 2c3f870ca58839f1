"""FHIRPath invariants (ElementDefinition.constraint), compiled once and evaluated with fhirpathpy.

fhirpathpy cannot take a bare primitive as its input, so a constraint on a primitive element
(`Patient.identifier.value`) is evaluated as `%node.all(<expression>)` with the value passed in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

_MODEL = models["r4"]

Compiled = Callable[..., list[Any]]


class InvariantError(ValueError):
    """A shipped constraint expression does not parse: a data bug, raised at load."""


class _RaiseOnError(ErrorListener):
    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any) -> None:
        raise InvariantError(f"column {column}: {msg}")


def check_syntax(expression: str) -> None:
    """Raise `InvariantError` on a FHIRPath syntax error.

    fhirpathpy's own parser recovers silently from syntax errors (and then returns nonsense), so
    the shipped expressions are parsed strictly once here, against the same grammar.
    """
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_RaiseOnError())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_RaiseOnError())
    parser.entireExpression()


@functools.lru_cache(maxsize=1024)
def compiled(expression: str, *, primitive: bool = False) -> Compiled:
    """The compiled expression (cached per process: the same invariant serves every resource)."""
    check_syntax(expression)
    text = f"%node.all({expression})" if primitive else expression
    try:
        return fhirpathpy.compile(text, _MODEL)
    except Exception as exc:  # the parser raises assorted types
        raise InvariantError(f"cannot compile FHIRPath {expression!r}: {exc}") from exc


def holds(expression: str, node: Any, resource: Any) -> bool:
    """Whether the invariant holds on `node`, FHIR-style: an empty or non-true result fails.

    `%resource` and `%rootResource` name the whole resource being validated.
    """
    primitive = not isinstance(node, dict | list)
    env = {"resource": resource, "rootResource": resource}
    if primitive:
        env["node"] = node
        result = compiled(expression, primitive=True)({}, env)
    else:
        result = compiled(expression)(node, env)
    if len(result) == 1 and isinstance(result[0], bool):
        return result[0]
    return bool(result)
