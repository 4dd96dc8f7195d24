"""The admin's scheduled work: unconfirmed import previews do not outlive their day."""

from __future__ import annotations

import logging

from celery import shared_task

from signup.admin import imports
from signup.extensions import db
from signup.logs import event

log = logging.getLogger(__name__)


@shared_task(name="signup.admin.tasks.purge_import_previews", ignore_result=True)
def purge_import_previews() -> int:
    """Data retention: delete import previews left unconfirmed past IMPORT_PREVIEW_HOURS."""
    purged = imports.purge_expired_previews()
    db.session.commit()
    if purged:
        event(log, logging.INFO, "imports.previews_purged", previews=purged)
    return purged
