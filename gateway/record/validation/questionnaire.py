"""Checking a QuestionnaireResponse against its Questionnaire.

Rules (FHIR R4 Questionnaire): items exist in the questionnaire at that level; each answer has the
item's type; choice answers come from answerOption or answerValueSet; only `repeats` items take
several answers; an item whose enableWhen is not met must not be answered, and `required` applies
only to enabled items of a `completed` (or `amended`) response. Issues point at items by linkId
(`QuestionnaireResponse.item.where(linkId='mobility').item.where(linkId='mobility.level')`).

enableWhen looks for the question's answers anywhere in the response; the shared assessment has no
enableWhen inside repeating groups, where the nearest answer would matter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.fhir.errors import issue
from gateway.record.validation.paths import item_path
from gateway.record.validation.terminology import Expansion
from gateway.types import JSON

Issue = dict[str, Any]
ExpansionLookup = Callable[[str], Expansion | None]

# Questionnaire item type -> the answer value[x] it takes.
ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",),
    "decimal": ("valueDecimal",),
    "integer": ("valueInteger",),
    "date": ("valueDate",),
    "dateTime": ("valueDateTime",),
    "time": ("valueTime",),
    "string": ("valueString",),
    "text": ("valueString",),
    "url": ("valueUri",),
    "choice": ("valueCoding",),
    "open-choice": ("valueCoding", "valueString"),
    "attachment": ("valueAttachment",),
    "reference": ("valueReference",),
    "quantity": ("valueQuantity",),
}
_ENFORCE_REQUIRED = frozenset({"completed", "amended"})


def _value(answer: Any, prefix: str = "value") -> tuple[str, Any] | None:
    if not isinstance(answer, dict):
        return None
    for key, value in answer.items():
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return key, value
    return None


def _same(a: Any, b: Any) -> bool:
    """Codings are equal by system and code (display is for people); other values by value."""
    if isinstance(a, dict) and isinstance(b, dict) and "code" in b:
        return bool(a.get("code") == b.get("code") and a.get("system") == b.get("system"))
    return bool(a == b)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "=":
        return _same(actual, expected)
    if op == "!=":
        return not _same(actual, expected)
    try:
        if op == ">":
            return bool(actual > expected)
        if op == "<":
            return bool(actual < expected)
        if op == ">=":
            return bool(actual >= expected)
        if op == "<=":
            return bool(actual <= expected)
    except TypeError:
        return False
    return False


def _condition(condition: JSON, answers: list[JSON]) -> bool:
    op = condition.get("operator")
    expected = _value(condition, "answer")
    if expected is None:
        return False
    key, wanted = expected
    if op == "exists":
        return bool(answers) == bool(wanted)
    value_key = "value" + key[len("answer") :]
    values = [a[value_key] for a in answers if value_key in a]
    if op == "!=":
        # FHIR: true when *no* answer equals the value, which includes having no answer.
        return not any(_same(v, wanted) for v in values)
    return any(_compare(str(op), v, wanted) for v in values)


def _enabled(item: JSON, answers_by_link: dict[str, list[JSON]]) -> bool:
    conditions = item.get("enableWhen") or []
    if not conditions:
        return True
    results = [_condition(c, answers_by_link.get(c.get("question", ""), [])) for c in conditions]
    return any(results) if item.get("enableBehavior") == "any" else all(results)


def _index_answers(items: list[JSON], into: dict[str, list[JSON]]) -> dict[str, list[JSON]]:
    for item in items:
        answers = item.get("answer", [])
        into.setdefault(item.get("linkId", ""), []).extend(answers)
        _index_answers(item.get("item", []), into)
        for answer in answers:
            _index_answers(answer.get("item", []), into)
    return into


class _Checker:
    def __init__(self, enforce_required: bool, answers: dict[str, list[JSON]], lookup: ExpansionLookup | None):
        self.enforce_required = enforce_required
        self.answers = answers
        self.lookup = lookup
        self.issues: list[Issue] = []

    def add(self, code: str, text: str, path: str, severity: str = "error") -> None:
        self.issues.append(issue(code, text, severity=severity, expression=[path]))

    def items(self, defs: list[JSON], given: list[JSON], parent: str) -> None:
        known = {d["linkId"] for d in defs if "linkId" in d}
        for r_item in given:
            if r_item.get("linkId") not in known:
                self.add(
                    "structure",
                    f"Item '{r_item.get('linkId')}' is not in the questionnaire here",
                    item_path(parent, str(r_item.get("linkId"))),
                )
        for d in defs:
            link = d.get("linkId", "")
            present = [r for r in given if r.get("linkId") == link]
            if not _enabled(d, self.answers):
                for n, r_item in enumerate(present):
                    if r_item.get("answer") or r_item.get("item"):
                        self.add(
                            "business-rule",
                            f"Item '{link}' is not enabled (enableWhen not met) and must not be answered",
                            item_path(parent, link, n if len(present) > 1 else None),
                        )
                continue
            if not present:
                if d.get("required") and self.enforce_required:
                    self.add("required", f"Item '{link}' is required", item_path(parent, link))
                continue
            if len(present) > 1 and not (d.get("type") == "group" and d.get("repeats")):
                self.add(
                    "structure",
                    f"Item '{link}' appears {len(present)} times but does not repeat",
                    item_path(parent, link, 1),
                )
            for n, r_item in enumerate(present):
                self.item(d, r_item, item_path(parent, link, n if len(present) > 1 else None))

    def item(self, d: JSON, r_item: JSON, path: str) -> None:
        kind = d.get("type", "")
        link = d.get("linkId", "")
        answers = r_item.get("answer", [])
        if kind in ("group", "display"):
            if answers:
                self.add("structure", f"A {kind} item ('{link}') takes no answers", f"{path}.answer[0]")
            if kind == "group":
                self.items(d.get("item", []), r_item.get("item", []), path)
            return
        if not answers and d.get("required") and self.enforce_required:
            self.add("required", f"Item '{link}' is required but has no answer", path)
        if len(answers) > 1 and not d.get("repeats"):
            self.add("structure", f"Item '{link}' takes one answer, found {len(answers)}", f"{path}.answer[1]")
        for k, answer in enumerate(answers):
            self.answer(d, answer, f"{path}.answer[{k}]")
            if d.get("item"):
                self.items(d["item"], answer.get("item", []), f"{path}.answer[{k}]")

    def answer(self, d: JSON, answer: JSON, path: str) -> None:
        link = d.get("linkId", "")
        found = _value(answer)
        if found is None:
            self.add("structure", f"Answer to '{link}' has no value", path)
            return
        key, value = found
        options = d.get("answerOption") or []
        allowed = set(ANSWER_TYPES.get(d.get("type", ""), ()))
        if options and d.get("type") in ("choice", "open-choice"):
            allowed |= {o[0] for o in (_value(opt) for opt in options) if o}
        if key not in allowed:
            self.add("value", f"Answer to '{link}' must be {' or '.join(sorted(allowed))}, not {key}", path)
            return
        open_text = d.get("type") == "open-choice" and key == "valueString"
        if options and not open_text:
            values = [o for o in (_value(opt) for opt in options) if o]
            if not any(k == key and _same(value, v) for k, v in values):
                self.add("value", f"Answer to '{link}' is not one of its answer options", path)
        elif d.get("answerValueSet") and key == "valueCoding" and self.lookup is not None:
            url = str(d["answerValueSet"])
            expansion = self.lookup(url)
            if expansion is None:
                self.add("not-supported", f"Value set {url} cannot be expanded; answer not checked", path, "warning")
            elif not expansion.contains(value.get("system"), str(value.get("code"))):
                self.add("code-invalid", f"Answer to '{link}' is not in the value set {url}", path)


def validate_questionnaire_response(
    qr: JSON, questionnaire: JSON, *, expansion: ExpansionLookup | None = None
) -> list[Issue]:
    """Issues in `qr` against `questionnaire` (empty when it conforms).

    `expansion` resolves an answerValueSet URL (the registry's `expansion`); without it, value-set
    answers are only type-checked.
    """
    given = qr.get("item", [])
    checker = _Checker(
        enforce_required=qr.get("status") in _ENFORCE_REQUIRED,
        answers=_index_answers(given, {}),
        lookup=expansion,
    )
    checker.items(questionnaire.get("item", []), given, "QuestionnaireResponse")
    return checker.issues
