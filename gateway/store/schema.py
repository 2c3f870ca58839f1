"""The one schema, for SQLite and PostgreSQL alike (SQLAlchemy Core).

Change this file first, then add a numbered revision under `migrations/versions/`;
`tests/store/test_migrations.py` checks that head matches this MetaData on both engines.

Times are naive UTC `DateTime`s on both engines so that comparisons (date search, history
`_since`) mean the same thing everywhere.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements an INTEGER PRIMARY KEY, so the sequence columns vary by dialect.
Seq = BigInteger().with_variant(Integer(), "sqlite")


# Key columns (types, ids, parameter names, codes, systems, reference targets, folded strings) are
# compared in every B-tree probe and insert. On PostgreSQL they collate as "C": bytewise `memcmp`
# rather than `strcoll` through the database's libc collation (a quarter of the server's CPU during
# a bulk ingest went on those comparisons), and a prefix LIKE can use the B-tree. For UTF-8 text the
# byte order is the code-point order, the order glibc's `C.UTF-8` sorts in, so `_sort` and paging
# order are unchanged there. SQLite compares bytewise (BINARY) already.
def key_text(length: int) -> TypeEngine[str]:
    """A `String(length)` that collates bytewise on PostgreSQL (see above)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# Current version of every resource; `content` is the exact JSON served to clients.
resource = Table(
    "resource",
    metadata,
    Column("res_type", key_text(64), primary_key=True),
    Column("res_id", key_text(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=True),  # NULL for a deleted resource
)
Index("ix_resource_type_updated", resource.c.res_type, resource.c.last_updated)

# Every version ever written, including delete tombstones; `seq` orders system history.
resource_version = Table(
    "resource_version",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("method", String(8), nullable=False),  # POST / PUT / DELETE
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=True),
    UniqueConstraint("res_type", "res_id", "version_id", name="uq_resource_version_key"),
)
Index("ix_resource_version_updated", resource_version.c.last_updated)
Index("ix_resource_version_type_updated", resource_version.c.res_type, resource_version.c.last_updated)

# Search index tables: one per search parameter type, rows replaced with each version and
# written in the same transaction. B-trees on (type, param, value): a generic JSON containment
# index was measured 80x slower for token lookups.
sp_token = Table(
    "sp_token",
    metadata,
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("param", key_text(64), nullable=False),
    Column("system", key_text(512), nullable=True),
    Column("code", key_text(512), nullable=True),
)
Index("ix_sp_token_lookup", sp_token.c.res_type, sp_token.c.param, sp_token.c.code, sp_token.c.system)
Index("ix_sp_token_owner", sp_token.c.res_type, sp_token.c.res_id)

sp_string = Table(
    "sp_string",
    metadata,
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("param", key_text(64), nullable=False),
    Column("norm", key_text(512), nullable=False),  # case- and accent-folded, for prefix search
    Column("exact", key_text(512), nullable=False),
)
Index("ix_sp_string_lookup", sp_string.c.res_type, sp_string.c.param, sp_string.c.norm)
Index("ix_sp_string_owner", sp_string.c.res_type, sp_string.c.res_id)

sp_date = Table(
    "sp_date",
    metadata,
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("param", key_text(64), nullable=False),
    Column("low", DateTime, nullable=False),  # open ends are stored as the min/max sentinels
    Column("high", DateTime, nullable=False),
)
Index("ix_sp_date_low", sp_date.c.res_type, sp_date.c.param, sp_date.c.low)
Index("ix_sp_date_high", sp_date.c.res_type, sp_date.c.param, sp_date.c.high)
Index("ix_sp_date_owner", sp_date.c.res_type, sp_date.c.res_id)

sp_reference = Table(
    "sp_reference",
    metadata,
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("param", key_text(64), nullable=False),
    Column("target_type", key_text(64), nullable=True),
    Column("target_id", key_text(64), nullable=True),
    Column("url", key_text(1024), nullable=True),  # absolute or canonical references to elsewhere
)
Index(
    "ix_sp_reference_lookup",
    sp_reference.c.res_type,
    sp_reference.c.param,
    sp_reference.c.target_id,
    sp_reference.c.target_type,
)
Index("ix_sp_reference_target", sp_reference.c.target_type, sp_reference.c.target_id)
Index("ix_sp_reference_owner", sp_reference.c.res_type, sp_reference.c.res_id)

sp_number = Table(
    "sp_number",
    metadata,
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("param", key_text(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("system", key_text(512), nullable=True),  # quantities only
    Column("code", key_text(128), nullable=True),
)
Index("ix_sp_number_lookup", sp_number.c.res_type, sp_number.c.param, sp_number.c.value)
Index("ix_sp_number_owner", sp_number.c.res_type, sp_number.c.res_id)

sp_uri = Table(
    "sp_uri",
    metadata,
    Column("res_type", key_text(64), nullable=False),
    Column("res_id", key_text(64), nullable=False),
    Column("param", key_text(64), nullable=False),
    Column("value", key_text(1024), nullable=False),
)
Index("ix_sp_uri_lookup", sp_uri.c.res_type, sp_uri.c.param, sp_uri.c.value)
Index("ix_sp_uri_owner", sp_uri.c.res_type, sp_uri.c.res_id)

INDEX_TABLES: dict[str, Table] = {
    "token": sp_token,
    "string": sp_string,
    "date": sp_date,
    "reference": sp_reference,
    "number": sp_number,
    "quantity": sp_number,
    "uri": sp_uri,
}

# Transactional outbox: one row per committed write, in the same transaction as the write.
outbox = Table(
    "outbox",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("method", String(8), nullable=False),
    Column("dispatched_at", DateTime, nullable=True),
)
Index("ix_outbox_pending", outbox.c.dispatched_at, outbox.c.seq)

# Key/value facts the gateway keeps about itself (paging secret, demo-loaded marker).
gateway_meta = Table(
    "gateway_meta",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- subscriptions ---
# Topic-based Subscriptions (R5 Backport IG). The Subscription resource itself lives in `resource`;
# these tables hold what the server adds to it: the running status and the numbered event log.

# One row per Subscription. `events_since_start` is the event-number allocator: it is bumped with
# a single UPDATE ... RETURNING so two workers can never hand out the same number.
subscription_status = Table(
    "subscription_status",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("topic", String(512), nullable=False),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("events_since_start", BigInteger, nullable=False, default=0),
    Column("last_delivered_event", BigInteger, nullable=False, default=0),  # highest number delivered
    Column("error_count", Integer, nullable=False, default=0),  # consecutive failed deliveries
    Column("last_error", Text, nullable=True),
    Column("heartbeat_period", Integer, nullable=True),  # seconds; NULL = no heartbeats
    Column("next_heartbeat", DateTime, nullable=True),
    Column("updated_at", DateTime, nullable=False),
    # The gateway process delivering this subscription's events right now (several processes share
    # one database): only the lease holder reads and sends them, so no event goes out twice at once.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime, nullable=True),
)
Index("ix_subscription_status_heartbeat", subscription_status.c.status, subscription_status.c.next_heartbeat)

# Every event ever numbered for a Subscription, delivered or not: `$events` replays from here, so an
# undelivered event is never dropped, only left with `delivered_at` NULL.
subscription_event = Table(
    "subscription_event",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("event_number", BigInteger, primary_key=True),
    Column("topic", String(512), nullable=False),
    Column("focus_type", String(64), nullable=False),
    Column("focus_id", String(64), nullable=False),
    Column("focus_version", Integer, nullable=True),
    Column("interaction", String(8), nullable=True),  # create | update | delete
    Column("context", Text, nullable=True),  # JSON list of additional-context references
    Column("created_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
)
Index("ix_subscription_event_pending", subscription_event.c.sub_id, subscription_event.c.delivered_at)
Index("ix_subscription_event_created", subscription_event.c.created_at)

# --- auth ---
# SMART Backend Services clients (gateway/auth/clients.py). Keys are registered as JWKS content or
# a JWKS URL (fetched and cached); a secret is kept only as a salted scrypt hash, never in clear.
auth_client = Table(
    "auth_client",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("organization", String(128), nullable=False),  # "Organization/<id>"
    Column("role", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # registered SMART scopes, space-separated
    Column("auth_method", String(32), nullable=False),  # private_key_jwt | client_secret_basic
    Column("jwks", Text, nullable=True),  # public JWKS JSON, when registered from a file
    Column("jwks_url", String(1024), nullable=True),
    Column("secret_hash", String(256), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # SMART `patient/` scopes of a backend client are confined to this Patient (its fixed launch
    # context, set at registration; the token response returns it as `patient`).
    Column("patient", String(64), nullable=True),
)
Index("ix_auth_client_organization", auth_client.c.organization)

# --- intake ---
# Inbound messages (gateway/intake/). A receipt is written in the same transaction as what the
# message did (resources, or a quarantine row), so "receipt exists" means "durably handled" and a
# resend with the same key gets the stored ACK back and changes nothing.
from sqlalchemy import LargeBinary  # noqa: E402

intake_receipt = Table(
    "intake_receipt",
    metadata,
    Column("id", Seq, primary_key=True, autoincrement=True),
    Column("source_id", String(64), nullable=False),
    Column("dedupe_key", String(64), nullable=False),  # sha256 hex of MSH-3 + MSH-10 + message bytes
    Column("kind", String(16), nullable=False),  # hl7v2 | social-care | community
    Column("control_id", String(64), nullable=True),  # MSH-10 (not personal data)
    Column("received_at", DateTime, nullable=False),
    Column("outcome", String(16), nullable=False),  # accepted | rejected | quarantined
    Column("ack", LargeBinary, nullable=True),  # the exact ACK returned (empty when none was wanted)
    Column("quarantine_id", BigInteger, nullable=True),
    UniqueConstraint("source_id", "dedupe_key", name="uq_intake_receipt_key"),
)
Index("ix_intake_receipt_received", intake_receipt.c.received_at)

# Input that could not be applied, kept byte for byte with its reason until it is replayed.
intake_quarantine = Table(
    "intake_quarantine",
    metadata,
    Column("id", Seq, primary_key=True, autoincrement=True),
    Column("source_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # hl7v2 | social-care | community
    Column("raw", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("replayed_at", DateTime, nullable=True),
    Column("status", String(16), nullable=False),  # open | replayed
)
Index("ix_intake_quarantine_status", intake_quarantine.c.status, intake_quarantine.c.received_at)

# --- intake jobs ---
# Large uploads processed in the background (gateway/intake/jobs.py). The upload is kept byte for
# byte so a job a crash interrupted is run again on start-up (the writes are conditional, so a
# re-run changes nothing already done); the finished report stays for the API to serve.
intake_job = Table(
    "intake_job",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # social-care
    Column("source_id", String(64), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | done | failed
    Column("rows_done", Integer, nullable=False, default=0),
    Column("rows_total", Integer, nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("report", LargeBinary, nullable=True),  # JSON, when done
    Column("error", Text, nullable=True),  # when failed (no personal data)
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
)
Index("ix_intake_job_status", intake_job.c.status)

# --- subscription event focus ---
# Finding the number an already-notified focus version got, so a redelivery keeps its number.
Index(
    "ix_subscription_event_focus",
    subscription_event.c.sub_id,
    subscription_event.c.focus_type,
    subscription_event.c.focus_id,
    subscription_event.c.focus_version,
)

# --- bulk export ---
# FHIR Bulk Data export jobs (gateway/fhir/export/). The row is the job's durable state: a job a
# stopped process left queued or running is run again (from the start) by the next process. The
# caller's access context is kept so the job decides consent exactly as the caller's own searches
# would; files and status are only ever shown to `client_id`.
export_job = Table(
    "export_job",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("access", Text, nullable=False),  # JSON: the caller's AccessContext (no personal data)
    Column("level", String(16), nullable=False),  # system | patient | group
    Column("group_id", String(64), nullable=True),
    Column("request_url", Text, nullable=False),  # the kick-off URL, echoed in the manifest
    Column("params", Text, nullable=False),  # JSON: types, since, output format
    Column("status", String(16), nullable=False),  # queued | running | done | failed
    Column("transaction_time", DateTime, nullable=False),
    Column("types_done", Integer, nullable=False, default=0),
    Column("types_total", Integer, nullable=False, default=0),
    Column("output", Text, nullable=True),  # JSON: [{type, file, count}], when done
    Column("error", Text, nullable=True),  # when failed (no personal data)
    Column("request_id", String(64), nullable=True),  # the kick-off's X-Request-ID, for the audit trail
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),  # also the runner's heartbeat
    Column("finished_at", DateTime, nullable=True),
    Column("expires_at", DateTime, nullable=True),  # files and row are deleted after this
)
Index("ix_export_job_status", export_job.c.status)
Index("ix_export_job_client_id", export_job.c.client_id)
