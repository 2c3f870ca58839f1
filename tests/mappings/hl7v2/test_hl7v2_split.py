"""`split_er7` gives exactly what python-hl7 (`from_hl7(hl7.parse(text))`) gives, or hands back.

python-hl7 stays the oracle: the fixtures, hand-made edge cases and a seeded fuzz of separator-heavy
text are split both ways and compared.
"""

from __future__ import annotations

import random
from pathlib import Path

import hl7
import pytest

from gateway.mappings.hl7v2.fields import from_hl7, split_er7
from gateway.mappings.hl7v2.parse import normalise_terminators

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "hl7v2"
MSH = "MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||ADT^A01^ADT_A01|C1|P|2.5.1"


def oracle(text: str) -> object:
    return from_hl7(hl7.parse(text))


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.name)
def test_fixtures_split_as_python_hl7_does(path: Path) -> None:
    text = normalise_terminators(path.read_bytes()).decode("latin-1")
    fast = split_er7(text)
    assert fast is not None
    assert fast == oracle(text)


@pytest.mark.parametrize(
    "body",
    [
        "PID|1||K1^^^Z9X^MR~9990000018^^^NHS^NH||O\\S\\BRIEN^Ann",
        'PID|||||""|A&B&&C^^D~~E^|',
        "NTE|1||line one\nline two",
        "ZZ1|a~b~c|x^y&z^|&|~|^|\\T\\\\F\\\\E\\\\X41\\|\\",
        "PID| spaced | name ^ given ",
        "PID|",
        "PD1\rPV1|1",  # python-hl7 names a segment without fields after its first character
        "EVN||20260601\rPV1|1|I|W1^B2^3\rMSH|^~\\&|SECOND",
    ],
)
def test_edge_cases_split_as_python_hl7_does(body: str) -> None:
    text = f"{MSH}\r{body}"
    fast = split_er7(text)
    assert fast is not None
    assert fast == oracle(text)


@pytest.mark.parametrize(
    "text",
    [
        "MSH#!@$%#A!B@C$D%E#F\rPID#1##K1!!!Z!MR@X",  # declared separators, not the usual ones
        "MSH|^~|A|B\rPID|1||A^B~C&D\\E",  # MSH-2 cut short: defaults for the rest
        "MSH||A|B",  # no encoding characters at all
    ],
)
def test_declared_separators_split_as_python_hl7_does(text: str) -> None:
    fast = split_er7(text)
    assert fast is not None
    assert fast == oracle(text)


@pytest.mark.parametrize(
    "text",
    [
        f"{MSH}\rP^ID|1",  # python-hl7 names such a segment after a piece of its first field
        f"{MSH}\rP^ID",
        "MSH|^~\\&",  # MSH-2 not closed by a field separator
        f"{MSH}\rMSH#^~\\&#X",
        "PID|1",
    ],
)
def test_odd_shapes_are_handed_back(text: str) -> None:
    assert split_er7(text) is None


def test_seeded_fuzz_matches_python_hl7() -> None:
    rng = random.Random(7)
    alphabet = 'ab |^~&\\"FSTRE.XZ1'
    for _ in range(400):
        segments = [MSH]
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(("PID", "PV1", "ZX1", "NTE"))
            body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            segments.append(f"{name}|{body}")
        text = "\r".join(segments)
        fast = split_er7(text)
        if fast is not None:
            assert fast == oracle(text), text
