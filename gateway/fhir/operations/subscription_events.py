"""`Subscription/[id]/$events` (Subscriptions R5 Backport IG): replay logged events for catch-up.

Parameters `eventsSinceNumber`, `eventsUntilNumber` (inclusive) and `content` (empty / id-only /
full-resource, default the subscription's own). Output: a query-event notification Bundle. Full
resources are read as the caller may see them; one the caller may not see degrades to id-only.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.alerts.install import SubscriptionRuntime, runtime_of
from gateway.alerts.subscriptions import events_bundle, parse_events_query, utcnow
from gateway.fhir.errors import not_found
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.operations.subscription_status import BACKPORT_IG, operation_params, visible_subscriptions
from gateway.fhir.repository import Repository
from gateway.fhir.responses import json_response
from gateway.fhir.services import services_of
from gateway.types import JSON

MAX_EVENTS = 1000
"""Most events in one `$events` answer; ask again from the last number for more."""


def run_events(
    repo: Repository, runtime: SubscriptionRuntime, sub_id: str, params: dict[str, str], *, fhir_base: str
) -> JSON:
    resource = visible_subscriptions(repo, [sub_id])[sub_id]
    spec = runtime.service.parse(resource)
    state = runtime.repo.get(sub_id)
    if state is None:
        raise not_found(f"Subscription/{sub_id} has no event log yet")
    query = parse_events_query(
        params.get("eventsSinceNumber"), params.get("eventsUntilNumber"), params.get("content"), default=spec.content
    )
    events = runtime.repo.events(sub_id, query.since, query.until, limit=MAX_EVENTS)
    resources: dict[str, JSON] = {}
    if query.content == "full-resource" and events:
        with repo.reader() as uow:
            stored = uow.fetch_many((e.focus_type, e.focus_id) for e in events)
            resources = {s.reference: s.json() for s in repo.visible(uow, stored)}
    return events_bundle(state, events, fhir_base=fhir_base, content=query.content, now=utcnow(), resources=resources)


async def handle(request: Request) -> Response:
    services = services_of(request)
    runtime = runtime_of(services)
    repo = repository(request)
    params = dict(await operation_params(request))
    sub_id: str = request.path_params["rid"]
    return json_response(
        await in_thread(lambda: run_events(repo, runtime, sub_id, params, fhir_base=services.fhir_base))
    )


register(
    Operation(
        name="events",
        handler=handle,
        types=("Subscription",),
        instance=True,
        definition=f"{BACKPORT_IG}/backport-subscription-events",
    )
)
