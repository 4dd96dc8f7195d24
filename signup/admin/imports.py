"""Admin side of imports: store the upload, read it in a task, preview its rows, then merge."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select

from signup import clock
from signup.admin import services
from signup.admin.access import Access
from signup.admin.models import ImportBatch, ImportStatus
from signup.errors import ValidationError
from signup.extensions import db
from signup.volunteers import importer

STALLED_AFTER = timedelta(seconds=30)  # waiting this long: its task was lost
# Reading this long: its worker died or was killed at the task's time limit (which is longer
# than the parse's own time box, and longer than this).
READING_GIVEN_UP_AFTER = timedelta(seconds=importer.MAX_SECONDS + 30)


def may_import(access: Access) -> bool:
    """Organisers and admins who see everything (a scoped account would lose sight of them)."""
    return access.can_edit and access.campaign_ids is None and access.states is None


def upload(access: Access, filename: str, data: bytes) -> ImportBatch:
    """Store an uploaded file for the import task; only its name and size are checked here.

    The file is untrusted and may be slow to read, so it is never parsed in the web request.
    """
    importer.check_upload(filename, len(data), current_app.config["IMPORT_MAX_BYTES"])
    batch = ImportBatch(
        user_id=access.user_id,
        filename=filename[:200],
        rows="[]",
        status=ImportStatus.WAITING,
        upload=data,
        size_bytes=len(data),
        created_at=clock.now(),
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def stalled() -> list[int]:
    """Batches whose task was lost (a broker outage) or whose reader died: to be sent again."""
    now = clock.now()
    query = select(ImportBatch.id).where(
        or_(
            (ImportBatch.status == ImportStatus.WAITING)
            & (ImportBatch.created_at < now - STALLED_AFTER),
            (ImportBatch.status == ImportStatus.READING)
            & (ImportBatch.reading_since < now - READING_GIVEN_UP_AFTER),
        )
    )
    return list(db.session.scalars(query.order_by(ImportBatch.id)))


def claim(batch_id: int) -> ImportBatch | None:
    """Take a waiting batch for reading; None when there is nothing to read.

    A batch being read for longer than any reader may take was left by a worker that died or
    was killed at its time limit: it is refused rather than read (and killed) again. One read
    for less is another worker's (a duplicate task): left alone.
    """
    batch = db.session.get(ImportBatch, batch_id, with_for_update=True)
    if batch is None:
        return None
    if batch.status == ImportStatus.READING:
        since = batch.reading_since
        if since is not None and since < clock.now() - READING_GIVEN_UP_AFTER:
            fail(batch, "reading the file was stopped (too slow or too large); split it")
        return None
    if batch.status != ImportStatus.WAITING:
        return None
    batch.status = ImportStatus.READING
    batch.reading_since = clock.now()
    db.session.flush()
    return batch


def read(batch: ImportBatch, committed: Callable[[], None]) -> None:
    """Check the batch's file into preview rows, or record its one-line error; drop the bytes.

    `committed` makes progress visible (the task commits); it is called every few rows.
    """

    def progress(rows_read: int, rows_total: int | None) -> None:
        batch.rows_read, batch.rows_total = rows_read, rows_total
        db.session.flush()
        committed()

    try:
        rows = importer.check(batch.upload or b"", batch.filename, progress=progress)
    except ValidationError as exc:
        fail(batch, str(exc))
        return
    batch.rows = json.dumps([asdict(r) for r in rows], ensure_ascii=False)
    batch.rows_read = batch.rows_total = len(rows)
    batch.status = ImportStatus.READY
    batch.upload = None  # the numbers now live in the rows; keep no second copy
    db.session.flush()


def fail(batch: ImportBatch, error: str) -> None:
    """Refuse a batch with a one-line error; its bytes are dropped."""
    batch.status = ImportStatus.FAILED
    batch.error = error.splitlines()[0][:300] if error else "the file could not be read"
    batch.upload = None
    db.session.flush()


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
    if batch.status != ImportStatus.READY:
        raise ValidationError("this list has not been read yet")
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
