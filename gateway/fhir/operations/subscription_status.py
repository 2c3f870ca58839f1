"""`Subscription/[id]/$status` and `Subscription/$status?id=…` (Subscriptions R5 Backport IG for R4).

Output: a searchset Bundle of one backport-subscription-status-r4 `Parameters` (query-status) per
subscription the caller may see; ids the caller may not see are answered as not found.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.alerts.install import runtime_of
from gateway.alerts.subscriptions import SubscriptionState, SubscriptionStateRepository, status_bundle, utcnow
from gateway.fhir.body import parse_json, read_body
from gateway.fhir.errors import invalid, not_found
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.repository import Repository
from gateway.fhir.responses import json_response
from gateway.fhir.services import services_of
from gateway.types import JSON

BACKPORT_IG = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition"


async def operation_params(request: Request) -> list[tuple[str, str]]:
    """(name, value) pairs from the query string and, for POST, a `Parameters` body (primitive values)."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = await read_body(request, services_of(request).settings.max_body_bytes)
        if body.strip():
            params = parse_json(body)
            if params.get("resourceType") != "Parameters":
                raise invalid("the operation body must be a Parameters resource")
            for p in params.get("parameter") or []:
                value = next((v for k, v in p.items() if k.startswith("value")), None)
                if isinstance(value, (str, int)) and not isinstance(value, bool):
                    pairs.append((str(p.get("name")), str(value)))
    return pairs


def subscription_ids(request: Request, pairs: list[tuple[str, str]]) -> list[str]:
    """The instance id, or the `id` parameters (comma-separated or repeated) at type level."""
    rid = request.path_params.get("rid")
    if rid and not rid.startswith("$"):
        return [rid]
    ids = [i.strip() for name, value in pairs if name == "id" for i in value.split(",") if i.strip()]
    return list(dict.fromkeys(ids))


def visible_subscriptions(repo: Repository, ids: list[str]) -> dict[str, JSON]:
    """The Subscriptions among `ids` the caller may read; raises FhirError (not-found) for any other."""
    repo.allow("read", "Subscription")
    with repo.reader() as uow:
        stored = uow.fetch_many(("Subscription", i) for i in ids)
        seen = {s.id: s.json() for s in repo.visible(uow, stored)}
    for sub_id in ids:
        if sub_id not in seen:
            raise not_found(f"Subscription/{sub_id}")
    return seen


def run_status(repo: Repository, states: SubscriptionStateRepository, ids: list[str], *, fhir_base: str) -> JSON:
    visible_subscriptions(repo, ids)
    found: list[SubscriptionState] = states.states(ids)
    return status_bundle(found, fhir_base=fhir_base, now=utcnow())


async def handle(request: Request) -> Response:
    services = services_of(request)
    runtime = runtime_of(services)
    repo = repository(request)
    ids = subscription_ids(request, await operation_params(request))
    if not ids:
        raise invalid("$status needs a subscription: Subscription/[id]/$status or ?id=…", ["id"])
    return json_response(await in_thread(lambda: run_status(repo, runtime.repo, ids, fhir_base=services.fhir_base)))


register(
    Operation(
        name="status",
        handler=handle,
        types=("Subscription",),
        instance=True,
        type_level=True,
        definition=f"{BACKPORT_IG}/backport-subscription-status",
    )
)
