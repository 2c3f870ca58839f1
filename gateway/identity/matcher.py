"""Fellegi–Sunter scoring of two person records, and grading of the result.

Each field is compared into one agreement level (exact, nickname, transposed…); each level
weighs log2(m/u) bits, with m and u kept with their reasons in `match_weights.json`. The score
is the sum. Fields are not independent for twins and relatives, so a few documented guards
cap (or, for an agreeing NHS number, lift) the grade whatever the sum. String similarity comes
from rapidfuzz; nothing here measures strings by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz.distance import OSA, Hamming, JaroWinkler

from gateway.identity.blocking import CandidateIndex
from gateway.identity.person import PersonRecord, postcode_outward, postcode_sector

WEIGHTS_FILE = Path(__file__).with_name("match_weights.json")

FIELDS = ("nhs_number", "family", "given", "birth_date", "sex", "postcode")
MISSING = "missing"

# Jaro-Winkler cut-offs for the name levels (documented with the levels in match_weights.json).
CLOSE = 0.92
FAMILY_SIMILAR = 0.85
GIVEN_SIMILAR = 0.80
# A swap is believed only when both crossed names agree: one shared name is not a swap.
SWAP_FAMILY_LEVELS = frozenset({"exact", "part", "close"})
SWAP_GIVEN_LEVELS = frozenset({"exact", "nickname", "close", "initial"})


class Grade(StrEnum):
    """The R4 match-grade codes, best first."""

    CERTAIN = "certain"
    PROBABLE = "probable"
    POSSIBLE = "possible"
    CERTAINLY_NOT = "certainly-not"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Grade.CERTAINLY_NOT: 0, Grade.POSSIBLE: 1, Grade.PROBABLE: 2, Grade.CERTAIN: 3}


@dataclass(frozen=True)
class Thresholds:
    """Lowest score (bits) for each grade; below `possible` is certainly-not."""

    certain: float
    probable: float
    possible: float

    def grade(self, score: float) -> Grade:
        if score >= self.certain:
            return Grade.CERTAIN
        if score >= self.probable:
            return Grade.PROBABLE
        if score >= self.possible:
            return Grade.POSSIBLE
        return Grade.CERTAINLY_NOT


@dataclass(frozen=True)
class Guard:
    """When every named field is at one of the listed levels, the grade is bounded."""

    when: Mapping[str, frozenset[str]]
    min_grade: Grade | None
    max_grade: Grade | None
    why: str

    def applies(self, levels: Mapping[str, str]) -> bool:
        return all(levels.get(name, MISSING) in allowed for name, allowed in self.when.items())


@dataclass(frozen=True)
class MatchModel:
    """The m/u table turned into weights, plus the prior, default thresholds and guards."""

    weights: Mapping[str, Mapping[str, float]]
    prior_log2_odds: float
    thresholds: Thresholds
    swap_penalty: float
    guards: tuple[Guard, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MatchModel:
        weights = {
            name: {level: math.log2(p["m"] / p["u"]) for level, p in spec["levels"].items()}
            for name, spec in data["fields"].items()
        }
        t = data["thresholds"]
        guards = tuple(
            Guard(
                when={name: frozenset(levels) for name, levels in g["when"].items()},
                min_grade=Grade(g["min_grade"]) if "min_grade" in g else None,
                max_grade=Grade(g["max_grade"]) if "max_grade" in g else None,
                why=g["why"],
            )
            for g in data.get("guards", [])
        )
        return cls(
            weights=weights,
            prior_log2_odds=float(data["prior_log2_odds"]),
            thresholds=Thresholds(float(t["certain"]), float(t["probable"]), float(t["possible"])),
            swap_penalty=float(data["swap_penalty"]["weight"]),
            guards=guards,
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> MatchModel:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    def weight(self, field_name: str, level: str) -> float:
        return 0.0 if level == MISSING else self.weights[field_name][level]

    def probability(self, score: float) -> float:
        """Posterior probability of a match given the score, in 0..1."""
        exponent = -(score + self.prior_log2_odds)
        if exponent > 1000:
            return 0.0
        return 1.0 / (1.0 + 2.0**exponent)


@lru_cache(maxsize=1)
def default_model() -> MatchModel:
    return MatchModel.load()


# --- comparisons: two records in, one agreement level out ------------------------------------


def compare_nhs_number(a: PersonRecord, b: PersonRecord) -> str:
    if not a.nhs_number or not b.nhs_number:
        return MISSING
    return "agree" if a.nhs_number == b.nhs_number else "disagree"


def compare_family(a: PersonRecord, b: PersonRecord) -> str:
    if not a.family_key or not b.family_key:
        return MISSING
    if a.family_key == b.family_key:
        return "exact"
    if (len(a.family_parts) > 1 or len(b.family_parts) > 1) and set(a.family_parts) & set(b.family_parts):
        return "part"
    similarity = JaroWinkler.similarity(a.family_key, b.family_key)
    if len(a.family_parts) > 1 or len(b.family_parts) > 1:
        similarity = max(similarity, *(JaroWinkler.similarity(x, y) for x in a.family_parts for y in b.family_parts))
    if similarity >= CLOSE:
        return "close"
    if similarity >= FAMILY_SIMILAR:
        return "similar"
    return "disagree"


def compare_given(a: PersonRecord, b: PersonRecord) -> str:
    x, y = a.first_given, b.first_given
    if not x or not y:
        return MISSING
    if x == y:
        return "exact"
    if a.given_canonical & b.given_canonical:
        return "nickname"
    if len(x) == 1 or len(y) == 1:
        return "initial" if x[0] == y[0] else "disagree"
    similarity = JaroWinkler.similarity(x, y)
    # Jaro-Winkler punishes a slip in the first letter of a short name (Max/Jax); one edit is a typo.
    if similarity >= CLOSE or (min(len(x), len(y)) >= 3 and OSA.distance(x, y) == 1):
        return "close"
    if x in b.given[1:] or y in a.given[1:]:
        return "middle"
    if similarity >= GIVEN_SIMILAR:
        return "similar"
    return "disagree"


def compare_birth_date(a: PersonRecord, b: PersonRecord) -> str:
    if not a.birth_year or not b.birth_year:
        return MISSING
    da, db = a.birth_date_text, b.birth_date_text
    if da and db:
        if da == db:
            return "exact"
        if (
            a.birth_year == b.birth_year
            and a.birth_month == b.birth_day
            and a.birth_day == b.birth_month
            and a.birth_month != a.birth_day
        ):
            return "transposed"
        if Hamming.distance(da, db) == 1:
            return "one_digit"
        return "year_only" if a.birth_year == b.birth_year else "disagree"
    # One side lacks the day (or month): compare at the precision both have.
    same_month = bool(a.birth_month and b.birth_month and a.birth_month == b.birth_month)
    if a.birth_year == b.birth_year:
        return "year_month" if same_month else "year_only"
    if a.birth_month and b.birth_month:
        ya, yb = f"{a.birth_year:04d}{a.birth_month:02d}", f"{b.birth_year:04d}{b.birth_month:02d}"
    else:
        ya, yb = f"{a.birth_year:04d}", f"{b.birth_year:04d}"
    return "one_digit" if Hamming.distance(ya, yb) == 1 else "disagree"


def compare_sex(a: PersonRecord, b: PersonRecord) -> str:
    if not a.sex or not b.sex:
        return MISSING
    return "agree" if a.sex == b.sex else "disagree"


def compare_postcode(a: PersonRecord, b: PersonRecord) -> str:
    if not a.postcodes or not b.postcodes:
        return MISSING
    if set(a.postcodes) & set(b.postcodes):
        return "exact"
    if {postcode_sector(p) for p in a.postcodes} & {postcode_sector(p) for p in b.postcodes}:
        return "sector"
    if {postcode_outward(p) for p in a.postcodes} & {postcode_outward(p) for p in b.postcodes}:
        return "district"
    return "disagree"


def swap_names(record: PersonRecord) -> PersonRecord | None:
    """The record with forename and surname exchanged (`SMITH John` keyed the wrong way round)."""
    if not record.given or not record.family:
        return None
    return replace(record, given=record.family_parts, family=record.first_given)


# --- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldComparison:
    """One line of the explanation: the field, its agreement level and what it weighed (bits)."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class MatchResult:
    """A scored candidate: what the $match response and the review list show."""

    record_id: str
    record: PersonRecord
    score: float
    probability: float
    grade: Grade
    explanation: tuple[FieldComparison, ...]
    names_swapped: bool = False
    guards: tuple[str, ...] = ()

    def explain(self) -> dict[str, Any]:
        """JSON for a reviewer: per-field level and weight, and any guard that bounded the grade."""
        return {
            "score": round(self.score, 2),
            "probability": round(self.probability, 6),
            "grade": self.grade.value,
            "names_swapped": self.names_swapped,
            "fields": [{"field": c.field, "level": c.level, "weight": round(c.weight, 2)} for c in self.explanation],
            "guards": list(self.guards),
        }


class Matcher:
    """Scores and grades pairs of person records with one `MatchModel`."""

    def __init__(self, model: MatchModel | None = None, *, thresholds: Thresholds | None = None) -> None:
        self.model = model or default_model()
        self.thresholds = thresholds or self.model.thresholds

    def _levels(self, a: PersonRecord, b: PersonRecord) -> dict[str, str]:
        return {
            "nhs_number": compare_nhs_number(a, b),
            "family": compare_family(a, b),
            "given": compare_given(a, b),
            "birth_date": compare_birth_date(a, b),
            "sex": compare_sex(a, b),
            "postcode": compare_postcode(a, b),
        }

    def _name_weight(self, levels: Mapping[str, str]) -> float:
        return self.model.weight("family", levels["family"]) + self.model.weight("given", levels["given"])

    def compare(
        self, query: PersonRecord, candidate: PersonRecord, *, record_id: str = "", swapped: PersonRecord | None = None
    ) -> MatchResult:
        """Score one pair. `swapped` is `swap_names(query)`, passed in when scoring many candidates."""
        model = self.model
        levels = self._levels(query, candidate)
        names_swapped = False
        if levels["family"] not in ("exact", "part") or levels["given"] not in ("exact", "nickname"):
            alternative = swapped if swapped is not None else swap_names(query)
            if alternative is not None:
                other = {
                    "family": compare_family(alternative, candidate),
                    "given": compare_given(alternative, candidate),
                }
                if (
                    other["family"] in SWAP_FAMILY_LEVELS
                    and other["given"] in SWAP_GIVEN_LEVELS
                    and self._name_weight(other) + model.swap_penalty > self._name_weight(levels)
                ):
                    levels.update(other)
                    names_swapped = True
        explanation = tuple(FieldComparison(name, levels[name], model.weight(name, levels[name])) for name in FIELDS)
        score = sum(c.weight for c in explanation) + (model.swap_penalty if names_swapped else 0.0)
        grade = self.thresholds.grade(score)
        fired: list[str] = []
        for guard in model.guards:  # in file order: a later guard overrides an earlier one
            if not guard.applies(levels):
                continue
            if guard.min_grade is not None and grade.rank < guard.min_grade.rank:
                grade = guard.min_grade
                fired.append(guard.why)
            elif guard.max_grade is not None and grade.rank > guard.max_grade.rank:
                grade = guard.max_grade
                fired.append(guard.why)
        return MatchResult(
            record_id=record_id,
            record=candidate,
            score=score,
            probability=model.probability(score),
            grade=grade,
            explanation=explanation,
            names_swapped=names_swapped,
            guards=tuple(fired),
        )

    def match(
        self,
        query: PersonRecord,
        index: CandidateIndex,
        *,
        limit: int | None = 10,
        min_grade: Grade = Grade.POSSIBLE,
        exclude: Collection[str] = (),
    ) -> list[MatchResult]:
        """Candidates graded `min_grade` or better, best first (ties by id), at most `limit`."""
        swapped = swap_names(query)
        results = []
        for record_id, candidate in index.candidates(query):
            if record_id in exclude:
                continue
            result = self.compare(query, candidate, record_id=record_id, swapped=swapped)
            if result.grade.rank >= min_grade.rank:
                results.append(result)
        results.sort(key=lambda r: (-r.grade.rank, -r.score, r.record_id))
        return results if limit is None else results[:limit]
