"""`parse_er7` (python-hl7's parse with its plan's levels kept) builds exactly `hl7.parse`'s tree,
and raises what `hl7.parse` raises."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import hl7
import pytest

from gateway.mappings.hl7v2.fields import ListFactory
from gateway.mappings.hl7v2.parse import normalise_terminators
from gateway.mappings.hl7v2.plan import parse_er7

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "hl7v2"
MSH = "MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||ADT^A01^ADT_A01|C1|P|2.5.1"


def shape(node: Any) -> Any:
    """The tree with each node's type and (for the message and python-hl7's containers) separators."""
    if isinstance(node, str):
        return node
    extra = (type(node).__name__, getattr(node, "separators", None), getattr(node, "esc", None))
    return (extra, [shape(child) for child in node])


def same(text: str) -> None:
    for factory in (ListFactory, hl7.Factory):
        try:
            expected = hl7.parse(text, factory=factory)
        except Exception as exc:
            with pytest.raises(type(exc)):
                parse_er7(text, factory=factory)
            continue
        got = parse_er7(text, factory=factory)
        assert shape(got) == shape(expected), text
        assert str(got) == str(expected)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.name)
def test_fixtures(path: Path) -> None:
    same(normalise_terminators(path.read_bytes()).decode("latin-1"))


@pytest.mark.parametrize(
    "text",
    [
        f"{MSH}\rPID|1||K1^^^Z9X^MR~9990000018^^^NHS^NH||O\\S\\BRIEN^Ann",
        f'{MSH}\rPID|||||""|A&B&&C^^D~~E^|',
        f"{MSH}\rPD1\rPV1|1",
        f"{MSH}\rP^ID|1\rA~B|2",
        f"  {MSH}\rEVN||20260601\r\n",
        "MSH#!@$%#A!B@C$D%E#F\rPID#1##K1!!!Z!MR@X%Y#$T$",
        "MSH|^~\rPID|a^b~c&d",  # fewer encoding characters: python-hl7's defaults for the rest
        "MSH|",
        "MSH|^~\\&",
        "PID|1",  # not a message: python-hl7's ParseException
        "",
    ],
)
def test_edge_cases(text: str) -> None:
    same(text)


def test_seeded_fuzz() -> None:
    rng = random.Random(11)
    alphabet = "ab |^~&\\#!@$%\r"
    for _ in range(400):
        head = rng.choice((MSH, "MSH#!@$%#A", "MSH|^~\\&", "MSH|"))
        text = head + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        same(text)
