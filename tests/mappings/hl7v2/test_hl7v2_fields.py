"""The view of a parsed message: what `parse_message` gives (python-hl7 with plain-list containers,
fields normalised as they are read) equals python-hl7's own tree normalised field by field."""

from __future__ import annotations

import random
from pathlib import Path

import hl7
import pytest

from gateway.mappings.hl7v2 import Hl7ParseError, parse_message
from gateway.mappings.hl7v2.fields import Rep, Segments, from_hl7
from gateway.mappings.hl7v2.parse import normalise_terminators

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "hl7v2"
MSH = "MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||ADT^A01^ADT_A01|C1|P|2.5.1"


def flat(segments: Segments) -> list[tuple[str, list[tuple[Rep, ...]]]]:
    return [(seg.name, [seg.field(i) for i in range(len(seg))]) for seg in segments]


def oracle(text: str) -> list[tuple[str, list[tuple[Rep, ...]]]]:
    """python-hl7's default containers, every field normalised at once."""
    return flat(from_hl7(hl7.parse(text)))


def viewed(text: str) -> list[tuple[str, list[tuple[Rep, ...]]]]:
    return flat(parse_message(text.encode("latin-1")).segments)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.name)
def test_fixtures(path: Path) -> None:
    text = normalise_terminators(path.read_bytes()).decode("latin-1")
    assert viewed(text) == oracle(text)


@pytest.mark.parametrize(
    "body",
    [
        "PID|1||K1^^^Z9X^MR~9990000018^^^NHS^NH||O\\S\\BRIEN^Ann",
        'PID|||||""|A&B&&C^^D~~E^|',
        "NTE|1||line one\nline two",
        "ZZ1|a~b~c|x^y&z^|&|~|^|\\T\\\\F\\\\E\\\\X41\\|\\",
        "PD1\rPV1|1",  # python-hl7 names a segment without fields after its first character
        "P^ID|1\rA~B|2",  # ... and one whose name has separators after its first repetition
        "EVN||20260601\rPV1|1|I|W1^B2^3",
    ],
)
def test_edge_cases(body: str) -> None:
    text = f"{MSH}\r{body}"
    assert viewed(text) == oracle(text)


def test_declared_separators() -> None:
    text = "MSH#!@$%#A!B@C$D%E#F\rPID#1##K1!!!Z!MR@X%Y#$T$"
    assert viewed(text) == oracle(text)


def test_an_escape_python_hl7_cannot_read_still_fails_the_parse() -> None:
    with pytest.raises(Hl7ParseError):
        parse_message(f"{MSH}\rNTE|1||\\.sp2x\\".encode())


def test_seeded_fuzz() -> None:
    rng = random.Random(7)
    alphabet = 'ab |^~&\\"FSTRE.XZ1'
    for _ in range(300):
        segments = [MSH]
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(("PID", "PV1", "ZX1", "NTE"))
            segments.append(f"{name}|" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
        text = "\r".join(segments)
        try:
            expected = oracle(text)
        except Exception:
            with pytest.raises(Hl7ParseError):
                parse_message(text.encode("latin-1"))
            continue
        assert viewed(text) == expected, text


@pytest.mark.parametrize(
    "components",
    [((),), (("",),), ((" ", "\t"), ("",)), (("", "x"),), ((" a ",),), (("",), ("", " "), ("\u00a0",)), (("", "0"),)],
)
def test_a_repetition_is_empty_when_no_subcomponent_holds_more_than_white_space(
    components: tuple[tuple[str, ...], ...],
) -> None:
    rep = Rep(components)
    assert rep.empty == (not any(s.strip() for comp in components for s in comp))
    assert rep == Rep(components, rep.empty) and hash(rep) == hash(Rep(components))
    assert rep != Rep((("other",),))
