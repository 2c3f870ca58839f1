"""A set of ids bound as one parameter (a JSON array of strings), so a statement's text never
depends on how many there are.

PostgreSQL reads the array as `= ANY(array)` and SQLite as `IN json_each`, both from an index: a
record of hundreds of resources never becomes hundreds of bound parameters (or a text[] the driver
quotes id by id), SQLAlchemy keeps the statement compiled (an expanding `IN` is re-rendered on every
execution) and SQLite reuses its prepared form.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from sqlalchemy import String, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.sql.elements import ColumnElement


def json_list(ids: Iterable[str]) -> str:
    """The value to bind: the ids as a sorted JSON array."""
    return orjson.dumps(sorted(ids)).decode()


def in_json(dialect: str, column: ColumnElement[str], name: str) -> ColumnElement[bool]:
    """`column IN <the JSON array of strings bound as name>`."""
    listed = bindparam(name, type_=String)
    if dialect == "postgresql":
        each = func.json_array_elements_text(cast(listed, JSON)).table_valued("value")
        return column == any_(func.array(select(each.c.value).scalar_subquery()))
    return column.in_(select(func.json_each(listed).table_valued("value").c.value))
