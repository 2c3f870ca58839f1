"""The consent and audit packages export exactly their documented surface, sorted."""

from __future__ import annotations

import gateway.audit
import gateway.consent


def test_exports_are_complete_and_sorted() -> None:
    for module in (gateway.consent, gateway.audit):
        names = module.__all__
        # isort style, as ruff's RUF022 sorts: CONSTANTS, then Classes, then functions.
        assert names == sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))
        assert all(hasattr(module, n) for n in names)
