"""Base structural validation of incoming resources against the R4B models (fhir.resources).

Only writes are validated; reads serve stored JSON as is. Pydantic error locations are turned
into FHIRPath (`Patient.name[0].family`) so clients can find the bad element.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from gateway.fhir.errors import issue, unprocessable


def fhirpath(rtype: str, loc: tuple[int | str, ...]) -> str:
    path = rtype
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "__root__":
            continue
        else:
            path += f".{part}"
    return path


def validation_issues(res: dict[str, Any]) -> list[dict[str, Any]]:
    rtype = res["resourceType"]
    model = get_fhir_model_class(rtype)
    try:
        model.model_validate(res)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err.get("loc", ()) if p != rtype)
            msg = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                msg = "unknown element"
            issues.append(issue("structure", f"{fhirpath(rtype, loc)}: {msg}", expression=[fhirpath(rtype, loc)]))
        return issues or [issue("structure", str(exc))]
    except (ValueError, TypeError) as exc:
        return [issue("structure", f"{rtype}: {exc}", expression=[rtype])]
    return []


def validate_resource(res: dict[str, Any], mode: str = "create") -> None:
    """Raise 422 with every problem found, each with its FHIRPath.

    Base structure always; then the shipped profiles the resource claims (and a
    QuestionnaireResponse against its shipped Questionnaire), per the write policy.
    """
    issues = validation_issues(res)
    if issues:
        raise unprocessable(issues)
    if (res.get("meta") or {}).get("profile") or res["resourceType"] == "QuestionnaireResponse":
        from gateway.record.validation import has_errors, shared_validator

        profile_issues = shared_validator().validate(res, mode=mode)
        if has_errors(profile_issues):
            raise unprocessable([i for i in profile_issues if i.get("severity") in ("error", "fatal")])
