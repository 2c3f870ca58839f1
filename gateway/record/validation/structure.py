"""Base R4 structure, checked by the fhir.resources (R4B) model of the resource's type.

This catches what no differential says: unknown elements, wrong JSON types, bad primitive formats,
missing base-mandatory elements. Pydantic's error locations are turned into FHIRPath.
"""

from __future__ import annotations

from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from gateway.fhir.errors import issue
from gateway.record.validation.paths import from_location

_CODE_BY_ERROR = {"missing": "required", "extra_forbidden": "structure"}


def check_structure(resource: Any) -> list[dict[str, Any]]:
    """Issues for anything the base resource definition does not allow (empty when it is fine)."""
    if not isinstance(resource, dict):
        return [issue("structure", "A resource must be a JSON object")]
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return [issue("structure", "resourceType is missing", expression=["resourceType"])]
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [issue("structure", f"Unknown resource type {resource_type!r}", expression=["resourceType"])]
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        return [
            issue(
                _CODE_BY_ERROR.get(err["type"], "value" if err["loc"] else "structure"),
                err["msg"],
                expression=[from_location(resource_type, err["loc"])],
            )
            for err in exc.errors(include_url=False)
        ]
    except (TypeError, ValueError) as exc:  # model-level validators raise plain errors
        return [issue("structure", str(exc), expression=[resource_type])]
    return []
