"""Admin side of imports: keep the checked rows for the preview, merge on confirmation."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete

from signup import clock
from signup.admin import services
from signup.admin.access import Access
from signup.admin.models import ImportBatch
from signup.errors import ValidationError
from signup.extensions import db
from signup.volunteers import importer


def may_import(access: Access) -> bool:
    """Organisers and admins who see everything (a scoped account would lose sight of them)."""
    return access.can_edit and access.campaign_ids is None and access.states is None


def upload(access: Access, filename: str, data: bytes) -> ImportBatch:
    """Check an uploaded file and keep its rows for the preview."""
    rows = importer.check(data, filename)
    batch = ImportBatch(
        user_id=access.user_id,
        filename=filename[:200],
        rows=json.dumps([asdict(r) for r in rows], ensure_ascii=False),
        created_at=clock.now(),
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def rows_of(batch: ImportBatch) -> list[importer.ImportRow]:
    """The checked rows of a batch."""
    return [importer.ImportRow(**row) for row in json.loads(batch.rows)]


def batch_for(access: Access, batch_id: int) -> ImportBatch:
    """The account's own batch; LookupError for anyone else's."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.user_id != access.user_id:
        raise LookupError(batch_id)
    return batch


def _expired_before() -> datetime:
    """Previews created before this time have expired (IMPORT_PREVIEW_HOURS)."""
    return clock.now() - timedelta(hours=current_app.config["IMPORT_PREVIEW_HOURS"])


def purge_expired_previews() -> int:
    """Delete unconfirmed previews past their age: their numbers and names wait nowhere."""
    result = db.session.execute(
        delete(ImportBatch).where(
            ImportBatch.merged_at.is_(None), ImportBatch.created_at < _expired_before()
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def confirm(access: Access, batch_id: int) -> importer.MergeResult:
    """Merge a previewed batch once; the stored rows are dropped afterwards."""
    batch = batch_for(access, batch_id)
    if batch.merged_at is not None:
        raise ValidationError("this list has already been imported")
    if batch.created_at < _expired_before():
        raise ValidationError("this preview has expired; upload the list again")
    rows = rows_of(batch)
    result = importer.merge(rows)
    batch.merged_at = clock.now()
    batch.rows = "[]"  # the numbers now live in volunteers; keep no second copy
    services.audit(
        access,
        "import",
        {
            "file": batch.filename,
            "created": result.created,
            "updated": result.updated,
            "skipped": result.skipped,
        },
        row_count=len(rows),
    )
    return result
