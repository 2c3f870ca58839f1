"""Export output files: one NDJSON file per resource type, in one folder per job under the data dir.

Names are built here only (`<Type>.ndjson`, `errors.ndjson`), and a requested name is accepted
only if it has that shape, so a download URL can never reach outside its job's folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import BinaryIO

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_FILE_NAME = re.compile(r"^(?:[A-Z][A-Za-z]{1,63}|errors)\.ndjson$")
ERRORS = "errors.ndjson"


class ExportFiles:
    """The folder of every export job (`<data_dir>/exports/<job id>/`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError("not an export job id")
        return self.root / job_id

    def fresh(self, job_id: str) -> Path:
        """An empty folder for the job (a restarted job starts over)."""
        folder = self.folder(job_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def open_for_type(self, job_id: str, rtype: str) -> BinaryIO:
        return (self.folder(job_id) / f"{rtype}.ndjson").open("wb")

    def path(self, job_id: str, name: str) -> Path | None:
        """The file `name` of the job, or None when the name is malformed or there is no such file."""
        if not _JOB_ID.match(job_id) or not _FILE_NAME.match(name):
            return None
        found = self.folder(job_id) / name
        return found if found.is_file() else None

    def remove(self, job_id: str) -> None:
        if _JOB_ID.match(job_id):
            shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def job_ids(self) -> list[str]:
        """Folders present on disk (for sweeping those whose job row is gone)."""
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir() and _JOB_ID.match(p.name)]
