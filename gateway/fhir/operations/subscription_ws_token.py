"""`Subscription/$get-ws-binding-token` and `Subscription/[id]/$get-ws-binding-token` (Backport IG).

Issues a short-lived token binding a websocket to the named websocket-channel subscriptions, for the
asking client only. Output `Parameters`: token, expiration, subscription(s), websocket-url.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.alerts.install import SubscriptionRuntime, runtime_of
from gateway.alerts.subscriptions import binding_token_parameters, utcnow
from gateway.fhir.errors import invalid
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.operations.subscription_status import (
    BACKPORT_IG,
    operation_params,
    subscription_ids,
    visible_subscriptions,
)
from gateway.fhir.repository import Repository
from gateway.fhir.responses import json_response
from gateway.fhir.services import services_of
from gateway.types import JSON


def run_get_ws_binding_token(repo: Repository, runtime: SubscriptionRuntime, ids: list[str]) -> JSON:
    if not ids:
        raise invalid("name the subscription(s): Subscription/[id]/$get-ws-binding-token or ?id=…", ["id"])
    for sub_id, resource in visible_subscriptions(repo, ids).items():
        if runtime.service.parse(resource).channel_type != "websocket":
            raise invalid(f"Subscription/{sub_id} does not use the websocket channel", ["id"])
    token = runtime.tokens.issue(ids, repo.access.client_id, now=utcnow())
    return binding_token_parameters(token, runtime.websocket_url)


async def handle(request: Request) -> Response:
    runtime = runtime_of(services_of(request))
    repo = repository(request)
    ids = subscription_ids(request, await operation_params(request))
    return json_response(await in_thread(lambda: run_get_ws_binding_token(repo, runtime, ids)))


register(
    Operation(
        name="get-ws-binding-token",
        handler=handle,
        types=("Subscription",),
        instance=True,
        type_level=True,
        definition=f"{BACKPORT_IG}/backport-subscription-get-ws-binding-token",
    )
)
