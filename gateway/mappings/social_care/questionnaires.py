"""The questions an assessment or review row answers: (linkId, text, CLD column) per item.

The canonical URLs name Questionnaires the record module can publish under profiles/; the
linkIds are the contract readers of these QuestionnaireResponses rely on.
"""

from __future__ import annotations

from gateway.codes import CANONICAL_BASE
from gateway.mappings.social_care import columns as c

Questions = tuple[tuple[str, str, str], ...]

ASSESSMENT_QUESTIONNAIRE: tuple[str, Questions] = (
    f"{CANONICAL_BASE}/Questionnaire/asc-assessment",
    (
        ("assessment-type", "Assessment type", c.ASSESSMENT_TYPE),
        ("eligible-needs-identified", "Eligible needs identified", c.ELIGIBLE_NEEDS),
        ("primary-support-reason", "Primary support reason", c.PRIMARY_SUPPORT_REASON),
        ("event-outcome", "Outcome", c.EVENT_OUTCOME),
        ("event-start-date", "Assessment started", c.EVENT_START),
        ("event-end-date", "Assessment completed", c.EVENT_END),
    ),
)

REVIEW_QUESTIONNAIRE: tuple[str, Questions] = (
    f"{CANONICAL_BASE}/Questionnaire/asc-review",
    (
        ("review-reason", "Review reason", c.REVIEW_REASON),
        ("review-outcomes-achieved", "Outcomes achieved", c.REVIEW_OUTCOMES),
        ("primary-support-reason", "Primary support reason", c.PRIMARY_SUPPORT_REASON),
        ("event-outcome", "Outcome", c.EVENT_OUTCOME),
        ("event-start-date", "Review started", c.EVENT_START),
        ("event-end-date", "Review completed", c.EVENT_END),
    ),
)
