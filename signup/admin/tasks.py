"""The import tasks: uploaded lists are read in a worker, never in a request, and unconfirmed
previews do not outlive their day."""

from __future__ import annotations

import logging

from celery import shared_task

from signup.admin import imports
from signup.extensions import db
from signup.logs import event
from signup.tasking import publish_all
from signup.volunteers.importer import MAX_SECONDS

log = logging.getLogger(__name__)


@shared_task(
    name="signup.admin.tasks.read_import",
    ignore_result=True,
    acks_late=True,
    # The parse stops itself at MAX_SECONDS; a worker stuck beyond that (a pathological
    # workbook) is killed, and the redelivered task refuses the batch (imports.claim).
    time_limit=int(MAX_SECONDS) + 60,
)
def read_import(batch_id: int) -> str | None:
    """Read one uploaded list into its preview rows (or its one-line error)."""
    batch = imports.claim(batch_id)
    db.session.commit()
    if batch is None:
        return None
    try:
        imports.read(batch, db.session.commit)
    except Exception as exc:  # a reader bug must not leave the batch "reading" for ever
        db.session.rollback()
        event(log, logging.WARNING, "import.read_failed", batch=batch_id, error=type(exc).__name__)
        imports.fail(batch, "the file could not be read; save it again as CSV UTF-8 and retry")
    db.session.commit()
    event(log, logging.INFO, "import.read", batch=batch_id, status=str(batch.status))
    return str(batch.status)


@shared_task(name="signup.admin.tasks.relay_imports", ignore_result=True)
def relay_imports() -> int:
    """Publish again the reading of uploads whose task was lost; a duplicate finds nothing."""
    return publish_all(read_import, [(batch_id,) for batch_id in imports.stalled()])


@shared_task(name="signup.admin.tasks.purge_import_previews", ignore_result=True)
def purge_import_previews() -> int:
    """Data retention: delete import previews left unconfirmed past IMPORT_PREVIEW_HOURS."""
    purged = imports.purge_expired_previews()
    db.session.commit()
    if purged:
        event(log, logging.INFO, "imports.previews_purged", previews=purged)
    return purged
