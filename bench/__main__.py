"""`python -m bench`: lists the benches; `python -m bench <name> [options]` runs one.

Each bench is a module with `main(argv) -> int`; it is imported only when asked for, so one
bench's optional dependencies never stop another from running.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# name -> (module, one line on what it measures)
BENCHES: dict[str, tuple[str, str]] = {
    "fhir-core": (
        "bench.fhir_core",
        "FHIR store + REST: create throughput, read and token-search p50/p95 on SQLite and PostgreSQL",
    ),
    "identity": ("bench.identity_match", "identity matching: precision/recall vs a baseline, $match latency"),
    "mllp-ingest": (
        "bench.mllp_ingest",
        "ADT over MLLP: messages/s (ACK received), 1 and 8 senders, SQLite and PostgreSQL",
    ),
    "social-care-ingest": (
        "bench.social_care_ingest",
        "social-care CSV extract ingest: rows/s and resources/s in-process (100k rows) and over HTTP upload",
    ),
    "alert-latency": (
        "bench.alert_latency",
        "ADT/Encounter accepted -> webhook notified: p50/p99/p99.9 at 100 presentations/s, 5k ward in 100k",
    ),
    "hook-post": ("bench.hook_post", "CPU of one rest-hook POST on a kept connection: httpx vs HookPoster"),
    "record-everything": ("bench.record_everything", "Patient/$everything p50/p95 with consent on, 500 resources"),
    "consent-overhead": ("bench.consent_overhead", "search and $everything p95 with consent enforcement on vs off"),
    "index-rows": (
        "bench.index_rows",
        "search index rows per resource: CPU µs, compiled vs interpreted paths, in-process",
    ),
}


def usage() -> str:
    lines = ["usage: python -m bench <bench> [options]   (python -m bench <bench> --help for its options)", ""]
    lines += [f"  {name:<18} {about}" for name, (_, about) in BENCHES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in BENCHES:
        print(f"unknown bench {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHES[name][0])
    entry = getattr(module, "main", None)
    if entry is None:
        print(f"bench {name!r} ({BENCHES[name][0]}) has no main()", file=sys.stderr)
        return 2
    return int(entry(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
