"""Consent and information-sharing engine: the one policy decision point (see `pdp.py`)."""

from __future__ import annotations

from gateway.consent.agreements import (
    AGREEMENT_CODE,
    AGREEMENT_CODE_SYSTEM,
    ISA_EXT,
    SOURCE_ORGANIZATION_TAG_SYSTEM,
    Agreement,
    AgreementError,
    build_agreement,
    load_agreements,
    parse_agreement,
    source_organizations,
)
from gateway.consent.cache import decision_cache_key
from gateway.consent.compartment import Compartment, CompartmentError, load_compartment, patients_of
from gateway.consent.consents import CLIENT_IDENTIFIER_SYSTEM, data_references
from gateway.consent.decision import AUDIT_SECURITY_ALERT, NOTIFY_CASE_MANAGER, Decision, FilterResult
from gateway.consent.decision_cache import DecisionCache, DecisionKey
from gateway.consent.facts import Facts
from gateway.consent.pdp import PolicyDecisionPoint, is_opted_out
from gateway.consent.policy import PolicyConfig, PolicyConfigError, default_policy, load_policy, parse_policy

__all__ = [
    "AGREEMENT_CODE",
    "AGREEMENT_CODE_SYSTEM",
    "AUDIT_SECURITY_ALERT",
    "CLIENT_IDENTIFIER_SYSTEM",
    "ISA_EXT",
    "NOTIFY_CASE_MANAGER",
    "SOURCE_ORGANIZATION_TAG_SYSTEM",
    "Agreement",
    "AgreementError",
    "Compartment",
    "CompartmentError",
    "Decision",
    "DecisionCache",
    "DecisionKey",
    "Facts",
    "FilterResult",
    "PolicyConfig",
    "PolicyConfigError",
    "PolicyDecisionPoint",
    "build_agreement",
    "data_references",
    "decision_cache_key",
    "default_policy",
    "is_opted_out",
    "load_agreements",
    "load_compartment",
    "load_policy",
    "parse_agreement",
    "parse_policy",
    "patients_of",
    "source_organizations",
]
