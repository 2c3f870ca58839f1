"""AuditEvent building (IHE BALP style) and batched writing off the request path."""

from __future__ import annotations

from gateway.audit.events import (
    MAJOR_FAILURE,
    MINOR_FAILURE,
    SERIOUS_FAILURE,
    SUCCESS,
    audit_export,
    audit_read,
    audit_search,
    audit_write,
    build_audit_event,
    is_security_alert,
)
from gateway.audit.writer import AuditSink, BatchingAuditWriter, ListAuditSink

__all__ = [
    "MAJOR_FAILURE",
    "MINOR_FAILURE",
    "SERIOUS_FAILURE",
    "SUCCESS",
    "AuditSink",
    "BatchingAuditWriter",
    "ListAuditSink",
    "audit_export",
    "audit_read",
    "audit_search",
    "audit_write",
    "build_audit_event",
    "is_security_alert",
]
