"""`care-gateway demo`: the whole story in the terminal, on a throwaway gateway, in under a minute.

It runs the real thing, not a simulation: the gateway as `serve` builds it (tokens, consent,
intake, events, alerts, subscriptions) on a free loopback port with its MLLP listener, a small
webhook receiver standing in for the case manager's and the hospital's systems, and the demo
clients' own credentials. Every number printed comes from an HTTP or MLLP answer. `--quiet`
prints nothing and the caller (the test) reads the returned `DemoFacts`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT
from gateway.app import build_services, create_app, demo_credentials
from gateway.codes import EPISODE_TYPE_SYSTEM, TOPIC_PRESENTED, VIRTUAL_WARD
from gateway.demo import load
from gateway.events import pending_count
from gateway.fhir.services import Services
from gateway.intake.mllp import send_mllp
from gateway.settings import Settings

Say = Callable[[str], None]

# Who is who in the story (fixtures/demo/01-core.json and 04-virtual-ward.json).
ADA, BERT, CERYS = "p-ada", "p-bert", "p-cerys"
ADA_HOSPITAL_NUMBER, CERYS_HOSPITAL_NUMBER = "RXX100001", "RXX100003"
CLIENTS = {
    "demo-hospital": "the hospital",
    "demo-council": "the council",
    "demo-community": "the community provider",
    "demo-out-of-hours": "out-of-hours / 111",
    "demo-case-management": "the case team",
}


@dataclass
class DemoFacts:
    """What happened, for the test (and anyone scripting the demo)."""

    ack_codes: list[str] = field(default_factory=list)
    case_manager_events: list[int] = field(default_factory=list)
    hospital_notifications: int = 0
    hospital_flags: int = 0
    discharge_tasks: int = 0
    alerts_total: int = 0
    patients_seen: dict[str, int] = field(default_factory=dict)
    encounters_seen: dict[str, int] = field(default_factory=dict)
    sees_objector: dict[str, bool] = field(default_factory=dict)
    sees_mental_health: dict[str, bool] = field(default_factory=dict)
    council_report: dict[str, int] = field(default_factory=dict)
    worklist: list[str] = field(default_factory=list)
    caseloads: dict[str, int] = field(default_factory=dict)
    audit_events: int = 0
    seconds: float = 0.0


# -- plumbing: ports, servers, the webhook receiver ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Webhooks:
    """Stands in for the case manager's app and the hospital's system: records what each receives."""

    base: str = ""
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.received.setdefault(request.path_params["name"], []).append(json.loads(await request.body()))
            return Response(status_code=200)

        return Starlette(routes=[Route("/hook/{name}", receive, methods=["POST"])])

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"

    def events(self, name: str) -> list[int]:
        """Event numbers of the event notifications (handshakes and heartbeats are left out)."""
        numbers = []
        for bundle in self.received.get(name, []):
            params = bundle["entry"][0]["resource"]["parameter"]
            if next((p.get("valueCode") for p in params if p["name"] == "type"), None) != "event-notification":
                continue
            for p in params:
                if p["name"] == "notification-event":
                    numbers += [int(x["valueString"]) for x in p["part"] if x["name"] == "event-number"]
        return numbers


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- HL7 v2 the hospital sends during the demo -----------------------------------------------------


def _pv1(**fields: str) -> str:
    out = ["PV1"] + [""] * 45
    for name, value in fields.items():
        out[int(name[1:])] = value
    return "|".join(out).rstrip("|")


def adt(trigger: str, control_id: str, hospital_number: str, name: str, pv1: str, now: datetime) -> bytes:
    """A message carrying the hospital number only: the gateway must know who that is."""
    ts = now.strftime("%Y%m%d%H%M%S")
    structure = "ADT_A01"
    return (
        "\r".join(
            [
                f"MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|{ts}||ADT^{trigger}^{structure}|{control_id}|P|2.4|||AL|NE",
                f"EVN|{trigger}|{ts}",
                f"PID|1||{hospital_number}^^^Z9X^MR||{name}",
                pv1,
            ]
        )
        + "\r"
    ).encode()


def ae_registration(now: datetime, control_id: str) -> bytes:
    pv1 = _pv1(f1="1", f2="E", f3="ED^MAJ^CUB4^Z9X", f4="E", f19=f"ED{control_id[-8:]}", f44=now.strftime("%Y%m%d%H%M"))
    return adt("A04", control_id, ADA_HOSPITAL_NUMBER, "LOVELACE^Ada", pv1, now)


def admission(now: datetime, control_id: str) -> bytes:
    pv1 = _pv1(
        f1="1",
        f2="I",
        f3="WARD7^A^3^Z9X",
        f4="E",
        f10="180",
        f19=f"IP{control_id[-8:]}",
        f44=now.strftime("%Y%m%d%H%M"),
    )
    return adt("A01", control_id, CERYS_HOSPITAL_NUMBER, "MORGAN^Cerys", pv1, now)


def msa(ack: bytes) -> tuple[str, str]:
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA|"):
            parts = segment.decode(errors="replace").split("|")
            return parts[1], parts[2] if len(parts) > 2 else ""
    return "", ""


# -- the walk-through ------------------------------------------------------------------------------


class Walkthrough:
    def __init__(self, services: Services, base: str, mllp_port: int, hooks: Webhooks, say: Say) -> None:
        self.services = services
        self.base = base
        self.fhir = services.settings.fhir_base
        self.mllp_port = mllp_port
        self.hooks = hooks
        self.say = say
        self.facts = DemoFacts()
        self.secrets = {c["client_id"]: c["client_secret"] for c in demo_credentials(services)}
        self._clients: dict[str, httpx.Client] = {}
        self._step = 0
        self.today = datetime.now(UTC).date()  # the demo's dates are placed relative to this day

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def step(self, title: str, why: str) -> None:
        self._step += 1
        self.say("")
        self.say(f"Step {self._step}. {title}")
        self.say("-" * (len(title) + 6 + len(str(self._step))))
        for line in why.splitlines():
            self.say(f"  {line}")
        self.say("")

    def client(self, client_id: str) -> httpx.Client:
        """An API client holding a fresh token from the gateway's own token endpoint."""
        if client_id not in self._clients:
            token = httpx.post(
                f"{self.base}/auth/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, self.secrets[client_id]),
                timeout=10,
            )
            token.raise_for_status()
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            self._clients[client_id] = httpx.Client(base_url=self.fhir, headers=headers, timeout=15)
        return self._clients[client_id]

    def total(self, client_id: str, path: str, **params: str) -> int:
        answer = self.client(client_id).get(path, params={"_summary": "count", **params})
        answer.raise_for_status()
        count: int = answer.json().get("total", 0)
        return count

    def sees(self, client_id: str, path: str) -> bool:
        return self.client(client_id).get(path).status_code == 200

    def mllp(self, message: bytes) -> bytes:
        return asyncio.run(send_mllp("127.0.0.1", self.mllp_port, message, timeout=15))

    # -- the story ---------------------------------------------------------------------------------

    def run(self) -> DemoFacts:
        started = time.monotonic()
        self.organisations()
        self.council_extract()
        self.hospital_and_community()
        self.virtual_ward()
        self.subscriptions()
        self.presentation()
        self.admission()
        self.who_sees_what()
        self.case_finding()
        self.audit()
        self.facts.seconds = round(time.monotonic() - started, 1)
        self.say("")
        self.say(f"That is the whole story ({self.facts.seconds} s). `make run` serves the same data set.")
        return self.facts

    def organisations(self) -> None:
        self.step(
            "Organisations, sharing agreements and people",
            "Five organisations share one gateway. Each reaches it as an API client with its own\n"
            "credentials, and sees a person's data only where an information-sharing agreement\n"
            "(a FHIR Basic resource) admits it and the person has not objected (a FHIR Consent).",
        )
        written = load.load_core(self.services, self.today)
        self.say(f"  loaded {written} resources from fixtures/demo ({', '.join(load.CORE_FILES)})")
        for client_id, who in CLIENTS.items():
            self.say(f"  client {client_id:<22} is {who}")
        self.say("  agreements: direct care (hospital, community, case team); social care (council: only")
        self.say("  social-care and case-team records); out-of-hours (a virtual-ward summary); emergency access.")
        self.say("  Consents: Albert objects to the council seeing his record; Cerys lets the case team")
        self.say("  (and no one else) see her mental-health information.")

    def council_extract(self) -> None:
        self.step(
            "The council's extract arrives",
            "Westshire Council sends its adult social care client-level extract (a CSV). The intake\n"
            "maps each row to FHIR, writes it with Provenance, and reports every row.",
        )
        report = load.ingest_council_extract(self.services, self.today)
        self.facts.council_report = dict(report["totals"])
        totals = report["totals"]
        self.say(
            f"  {totals['rows']} rows: {totals['accepted']} accepted, {totals['rejected']} rejected, "
            f"{totals['resources']} FHIR resources written"
        )
        for row in report["rows"]:
            if row.get("status") != "accepted":
                self.say(f"  row {row['row']} rejected (kept in quarantine): {'; '.join(row.get('reasons', []))}")

    def hospital_and_community(self) -> None:
        self.step(
            "The hospital's feed and the community provider's records",
            "The hospital's ADT history (HL7 v2) goes through the same intake as its live MLLP feed;\n"
            "the community provider's contacts, referrals and teams are mapped and written the same way.\n"
            "People are matched on NHS number, so the hospital's own numbers join their records.",
        )
        acks = load.ingest_hospital_feed(self.services, self.today)
        codes = [msa(a)[0] for a in acks]
        self.say(f"  {len(acks)} hospital messages, acknowledged: {', '.join(sorted(set(codes)))}")
        community = load.ingest_community_records(self.services, self.today)
        self.say(f"  {community.accepted} community records written ({community.rejected} refused)")

    def virtual_ward(self) -> None:
        self.step(
            "Enrolling people on the virtual ward",
            "The case team enrols three people: an EpisodeOfCare each, a CareTeam across organisations\n"
            "(case manager, social worker, community nurse, a ward clerk as single point of contact,\n"
            "and the informal carer), a joint CarePlan with goals and activities by several\n"
            "organisations, and a completed shared assessment (QuestionnaireResponse).",
        )
        # The history above is a backfill, not news: let the gateway finish reading it before enrolling.
        wait_for(lambda: pending_count(self.services.store) == 0)
        load.enrol_virtual_ward(self.services, self.today)
        load.mark_loaded(self.services, 0)
        bundle = (
            self.client("demo-case-management")
            .get("/EpisodeOfCare", params={"status": "active", "type": f"{EPISODE_TYPE_SYSTEM}|{VIRTUAL_WARD}"})
            .json()
        )
        for entry in bundle.get("entry", []):
            episode = entry["resource"]
            self.say(
                f"  EpisodeOfCare/{episode['id']:<9} for {episode['patient']['reference']:<15} "
                f"case manager {episode['careManager']['reference']}, since {episode['period']['start']}"
            )

    def subscriptions(self) -> None:
        self.step(
            "Who wants to hear about it",
            "The case manager Grace Okafor subscribes (FHIR R4 Subscription, backport topic) to\n"
            "presentations of anyone on her caseload; the hospital subscribes to presentations at\n"
            "the hospital. Both get a webhook; payloads carry ids only, read back with a token.",
        )
        self._subscribe("demo-case-management", "case-manager", "Communication?care-manager=Practitioner/cm-okafor")
        self._subscribe("demo-hospital", "hospital", "Communication?organization=Organization/trust-rxx")

    def _subscribe(self, client_id: str, hook: str, criteria: str) -> None:
        client = self.client(client_id)
        body = {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": f"demo: {CLIENTS[client_id]}",
            "criteria": TOPIC_PRESENTED,
            "_criteria": {"extension": [{"url": EXT_FILTER_CRITERIA, "valueString": criteria}]},
            "channel": {
                "type": "rest-hook",
                "endpoint": self.hooks.url(hook),
                "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
            },
        }
        created = client.post("/Subscription", json=body)
        created.raise_for_status()
        sub_id = created.json()["id"]
        active = wait_for(lambda: client.get(f"/Subscription/{sub_id}").json().get("status") == "active")
        self.say(f"  {client_id}: Subscription/{sub_id} {'active' if active else 'NOT active'} ({criteria})")

    def presentation(self) -> None:
        self.step(
            "Ada turns up at A&E",
            "The hospital registers Ada in A&E (ADT^A04 over MLLP). Its message carries only its own\n"
            "hospital number; the gateway knows from the feed that this is Ada, who is on the virtual ward.",
        )
        now = datetime.now(UTC)
        control_id = "DEMO" + now.strftime("%H%M%S%f")
        message = ae_registration(now, control_id)
        ack = self.mllp(message)
        code, ref = msa(ack)
        self.facts.ack_codes.append(code)
        self.say(f"  ACK: MSA|{code}|{ref}  (committed before the ACK was sent)")
        wait_for(lambda: bool(self.hooks.events("case-manager")))
        self.facts.case_manager_events = self.hooks.events("case-manager")
        self.say(f"  the case manager's webhook got event number(s) {self.facts.case_manager_events}")
        again = self.mllp(message)
        self.say(f"  the same message again gets the same ACK ({again == ack}), and nobody is alerted twice")
        time.sleep(1.0)
        self.facts.case_manager_events = self.hooks.events("case-manager")
        wait_for(lambda: bool(self.hooks.events("hospital")), timeout=3)
        self.facts.hospital_notifications = len(self.hooks.events("hospital"))
        self.say(f"  the hospital's webhook got {self.facts.hospital_notifications} notification(s)")
        flags = self.client("demo-hospital").get("/Flag", params={"patient": ADA, "status": "active"}).json()
        self.facts.hospital_flags = flags.get("total", 0)
        for entry in flags.get("entry", []):
            self.say(f'  the A&E team sees a Flag on Ada: "{entry["resource"]["code"].get("text", "")}"')

    def admission(self) -> None:
        self.step(
            "Cerys is admitted",
            "An admission (ADT^A01) for Cerys, also by hospital number. Besides the alert, an admission\n"
            "opens an early discharge-planning Task for her case manager.",
        )
        now = datetime.now(UTC)
        ack = self.mllp(admission(now, "DEMA" + now.strftime("%H%M%S%f")))
        self.facts.ack_codes.append(msa(ack)[0])
        self.say(f"  ACK: MSA|{msa(ack)[0]}")
        case_team = self.client("demo-case-management")
        wait_for(lambda: case_team.get("/Task", params={"patient": CERYS}).json().get("total", 0) > 0)
        tasks = case_team.get("/Task", params={"patient": CERYS}).json()
        self.facts.alerts_total = self.total("demo-case-management", "/Communication")
        self.facts.discharge_tasks = tasks.get("total", 0)
        for entry in tasks.get("entry", []):
            task = entry["resource"]
            owner = (task.get("owner") or {}).get("reference")
            self.say(f"  Task/{task['id']}: {task.get('description', '')} (owner {owner}, {task['status']})")

    def who_sees_what(self) -> None:
        self.step(
            "Who can see what",
            "The same searches by each organisation's client. The gateway filters every answer by the\n"
            "agreements and the person's Consents, and audits every access.",
        )
        self.say(f"  {'client':<22} {'Patients':>8} {'Encounters':>10}  Albert?  Cerys's mental health?")
        for client_id in CLIENTS:
            patients = self.total(client_id, "/Patient")
            encounters = self.total(client_id, "/Encounter") if self._may(client_id, "Encounter") else 0
            objector = self.sees(client_id, f"/Patient/{BERT}")
            mental = self.sees(client_id, "/Condition/cond-cerys-depression")
            self.facts.patients_seen[client_id] = patients
            self.facts.encounters_seen[client_id] = encounters
            self.facts.sees_objector[client_id] = objector
            self.facts.sees_mental_health[client_id] = mental
            self.say(
                f"  {client_id:<22} {patients:>8} {encounters:>10}  {'yes' if objector else 'no':<7}  "
                f"{'yes' if mental else 'no'}"
            )
        self.say("  The council sees social-care and case-team records but no hospital Encounters, and not")
        self.say("  Albert at all; Cerys's mental-health record reaches the case team (her Consent) and the")
        self.say("  community provider who wrote it, nobody else.")

    def _may(self, client_id: str, rtype: str) -> bool:
        return self.client(client_id).get(f"/{rtype}", params={"_summary": "count"}).status_code == 200

    def case_finding(self) -> None:
        self.step(
            "Case-finding and caseloads",
            "The case-finding score ranks people not yet case-managed for a clinician's judgement\n"
            "(admissions, A&E, long-term conditions, age, social care, living alone); it decides nothing.",
        )
        case_team = httpx.Client(base_url=self.base, headers=self.client("demo-case-management").headers, timeout=15)
        try:
            found = case_team.post("/api/case-management/case-finding").json()
            self.say(f"  scored {found['scored']} people; worklist at threshold {found['threshold']}:")
            for item in found["worklist"]:
                self.facts.worklist.append(item["patient"])
                self.say(f"  #{item['rank']} {item['patient']:<16} {item['points']:>3} points ({item['band']})")
                for reason in item["reasons"][:4]:
                    self.say(f"       - {reason}")
            loads = case_team.get("/api/case-management/caseloads").json()
            for c in loads["caseloads"]:
                self.facts.caseloads[c["careManager"]] = c["active"]
                warn = f" WARNING: {'; '.join(c['warnings'])}" if c["warnings"] else ""
                self.say(
                    f"  caseload {c.get('display') or c['careManager']}: {c['active']} active, "
                    f"{c['highRisk']} high risk{warn}"
                )
        finally:
            case_team.close()

    def audit(self) -> None:
        self.step(
            "The audit trail",
            "Every read and write is an AuditEvent, so a person can be told who looked at their record.",
        )
        bundle = (
            self.client("demo-case-management")
            .get("/AuditEvent", params={"patient": f"Patient/{BERT}", "_count": "200"})
            .json()
        )
        entries = bundle.get("entry", [])
        self.facts.audit_events = bundle.get("total", len(entries))
        self.say(f"  {self.facts.audit_events} AuditEvents about Albert, the latest:")
        events = sorted((e["resource"] for e in entries), key=lambda e: str(e.get("recorded", "")), reverse=True)
        for event in events[:6]:
            self.say("  " + describe_audit(event))


def describe_audit(event: dict[str, Any]) -> str:
    """One line: when, which client, what interaction, allowed or refused, under which policy."""
    requestor: dict[str, Any] = next((a for a in event.get("agent", []) if a.get("requestor")), {})
    who = requestor.get("who", {})
    client = (who.get("identifier") or {}).get("value") or who.get("reference") or who.get("display") or "?"
    action = next((c.get("code") for c in event.get("subtype", []) if c.get("code")), event.get("action", ""))
    outcome = "allowed" if event.get("outcome") == "0" else "refused"
    policy = ", ".join(requestor.get("policy", []))
    return f"{str(event.get('recorded', ''))[:19]}  {client:<22} {action:<12} {outcome:<8} {policy}"


# -- entry point -----------------------------------------------------------------------------------


def run_demo(data_dir: Path | None = None, *, quiet: bool = False, say: Say = print) -> DemoFacts:
    """Run the walk-through on a fresh gateway (in `data_dir`, else a temporary directory)."""
    out: Say = (lambda _: None) if quiet else say
    with tempfile.TemporaryDirectory(prefix="care-gateway-demo-") as tmp:
        root = data_dir or Path(tmp)
        port, mllp_port, hook_port = free_port(), free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'demo.db'}",
            base_url=base,
            mllp_port=mllp_port,
            ward_list_push_enabled=False,
            load_demo=False,
            log_level="WARNING",
        )
        out("care-gateway demo: a virtual ward across a hospital, a council, a community provider,")
        out(f"out-of-hours and a case-management team. Gateway on {base}, MLLP on port {mllp_port},")
        out(f"database {settings.effective_database_url}")
        services = build_services(settings)
        if load.is_loaded(services):
            raise SystemExit(f"{root} already holds a demo run; point --data-dir at an empty directory")
        hooks = Webhooks(base=f"http://127.0.0.1:{hook_port}")
        with serving(hooks.app(), hook_port), serving(create_app(settings, services), port):
            walk = Walkthrough(services, base, mllp_port, hooks, out)
            try:
                facts = walk.run()
            finally:
                walk.close()
        services.store.engine.dispose()
        return facts
