"""The completion manifest of an export (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status).

Pure: the job's outputs and the gateway's URLs in, the manifest JSON out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.fhir.export.run import Output
from gateway.store.api import instant


def manifest(
    *,
    transaction_time: datetime,
    request_url: str,
    output: list[Output],
    errors: list[Output],
    file_url: Callable[[str], str],
) -> dict[str, Any]:
    """Files are only served to the client that asked, with its token: `requiresAccessToken` is true."""
    return {
        "transactionTime": instant(transaction_time),
        "request": request_url,
        "requiresAccessToken": True,
        "output": [{"type": o.type, "url": file_url(o.name), "count": o.count} for o in output],
        "error": [{"type": o.type, "url": file_url(o.name), "count": o.count} for o in errors],
    }
