"""Which resource types the gateway serves (one list, read by routes and the CapabilityStatement)."""

from __future__ import annotations

SUPPORTED_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Encounter",
        "EpisodeOfCare",
        "CarePlan",
        "CareTeam",
        "Goal",
        "Questionnaire",
        "QuestionnaireResponse",
        "Consent",
        "Flag",
        "Communication",
        "ServiceRequest",
        "Task",
        "RiskAssessment",
        "List",
        "Group",
        "Provenance",
        "AuditEvent",
        "Subscription",
        "SubscriptionTopic",
        "Basic",
        "RelatedPerson",
        "Condition",
        "Observation",
        "Device",
    }
)
