"""Profile validation: `$validate` and validation on write against the profiles in `profiles/`.

Issues are OperationOutcome.issue dicts (`gateway.fhir.errors.issue`) whose `expression` is the
FHIRPath of the offending element.
"""

from __future__ import annotations

from gateway.record.validation.questionnaire import validate_questionnaire_response
from gateway.record.validation.registry import ProfileRegistry, default_registry
from gateway.record.validation.validator import MODES, Validator, WritePolicy, has_errors, shared_validator, validate

__all__ = [
    "MODES",
    "ProfileRegistry",
    "Validator",
    "WritePolicy",
    "default_registry",
    "has_errors",
    "shared_validator",
    "validate",
    "validate_questionnaire_response",
]
