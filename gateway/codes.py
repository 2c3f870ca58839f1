"""Canonical URLs of the gateway's own code systems, profiles and topics.

Canonical URLs are identifiers, not addresses: they are the same on every deployment. The
resources they name live as JSON under `profiles/`; this module is the one place code reads
their URLs from.
"""

from __future__ import annotations

CANONICAL_BASE = "https://care-gateway.example.org/fhir"

# CodeSystem: the kind of case-management programme an EpisodeOfCare belongs to.
EPISODE_TYPE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/episode-type"
VIRTUAL_WARD = "virtual-ward"
INTENSIVE_CASE_MANAGEMENT = "intensive-case-management"
SOCIAL_CARE_PACKAGE = "social-care-package"
CASE_MANAGED_EPISODE_TYPES = frozenset({VIRTUAL_WARD, INTENSIVE_CASE_MANAGEMENT})

# CodeSystem: alert and flag categories the gateway raises.
ALERT_CODE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/alert"
CASE_MANAGED_FLAG = "case-managed"
PRESENTATION_ALERT = "presentation-alert"
EARLY_DISCHARGE_PLANNING = "early-discharge-planning"
BREAK_GLASS_ACCESS = "break-glass-access"

# CodeSystem: service types for out-of-hours and NHS 111 contacts (presentations).
SERVICE_TYPE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/service-type"
OUT_OF_HOURS = "out-of-hours"
NHS_111 = "nhs-111"

# SubscriptionTopics
TOPIC_BASE = f"{CANONICAL_BASE}/SubscriptionTopic"
TOPIC_PRESENTED = f"{TOPIC_BASE}/case-managed-person-presented"
TOPIC_EPISODE_CHANGED = f"{TOPIC_BASE}/episode-of-care-changed"
TOPIC_CARE_PLAN_CHANGED = f"{TOPIC_BASE}/care-plan-changed"
TOPIC_WARD_LIST = f"{TOPIC_BASE}/ward-list"

# Extensions
EXT_BASE = f"{CANONICAL_BASE}/StructureDefinition"
EXT_NATIONAL_OPT_OUT = f"{EXT_BASE}/national-data-opt-out"

# Provenance/meta tags naming the source system a resource came from.
SOURCE_TAG_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/source-system"

# Standard systems used across modules.
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
MATCH_GRADE_EXT = "http://hl7.org/fhir/StructureDefinition/match-grade"
