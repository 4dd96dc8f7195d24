"""The embedded broker of `make run`: kombu's file-system transport, with atomic writes.

kombu's own transport creates each message file under its final name and then writes it, so a
reader listing the folder can take a file that another process (web, beat, worker) is still
writing and fail on half a JSON document, which kills the worker. Here a message is written
under a name the reader never picks and renamed to its final name when complete: a rename within
one folder is atomic, so a reader only ever sees whole messages.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

TRANSPORT = "signup.devbroker:Transport"


def message_name(queue: str) -> str:
    """The final file name kombu's reader matches: `<ms>_<uuid>.<queue>.msg`, oldest first."""
    return f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    """kombu's file-system channel whose messages appear whole or not at all."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Write the message beside its final name, then rename it into place.

        (kombu's own base classes disagree on this signature; this one is the parent's.)
        """
        final = os.path.join(self.data_folder_out, message_name(queue))
        # A leading dot: kombu's reader takes the part after the first dot as `<queue>.msg`.
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            if os.path.exists(partial):
                os.remove(partial)
            raise ChannelError(f"cannot add a message to {self.data_folder_out!r}") from exc


class Transport(filesystem.Transport):
    """kombu's file-system transport with the atomic channel."""

    Channel = Channel
