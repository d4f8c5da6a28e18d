"""One daemon job: the request it was accepted with, where its clips go, its state, and its record.

`Job.record()` is everything needed to run the job again after the daemon died (JSON-able, kept
in the library's jobs table); `Job.from_record` rebuilds it, so a restarted daemon makes the same
clips (same seeds, takes, steps, format, folder) under the same job id. An edit job also keeps its
edit (bridge/editjob.py: the kind, its parameter, the source's path and the options it runs with).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2m.bridge.osc import Peer
from n2m.bridge.request import Request


@dataclass
class Job:
    id: str
    request: Request
    out_dir: Path  # the clip folder, or the request's sub-folder of it
    reply_to: Peer | None  # None: a job run again after a restart, whose sender is unknown
    state: str = "queued"
    error: str | None = None
    clips: list[str] = field(default_factory=list)
    done: set[int] = field(default_factory=set)  # variation indices already written
    cancel: threading.Event = field(default_factory=threading.Event)
    shutdown: bool = False
    created: float = field(default_factory=time.time)
    edit: dict[str, Any] | None = None  # an edit of a source (bridge/editjob.py); None: a generation

    def summary(self) -> dict[str, Any]:
        r = self.request
        return {"id": self.id, "state": self.state, "prompt": r.prompt, "seed": r.seed,
                "controls": r.controls.as_dict(), "clips": self.clips, "error": self.error,
                "edit": None if self.edit is None else {k: v for k, v in self.edit.items() if k != "options"}}

    def record(self) -> dict[str, Any]:
        """The request as accepted, for running it again after a crash."""
        peer = None
        if self.reply_to is not None and self.reply_to.proto == "udp":  # a TCP connection dies with us
            peer = [self.reply_to.host, self.reply_to.port]
        rec = {"request": self.request.record(), "out_dir": str(self.out_dir), "reply_to": peer}
        return rec if self.edit is None else {**rec, "edit": self.edit}

    @classmethod
    def from_record(cls, job_id: str, rec: dict[str, Any], created: float) -> Job:
        """A job rebuilt from `record()`; KeyError/TypeError/ValueError if the record is damaged."""
        peer, edit = rec.get("reply_to"), rec.get("edit")
        if edit is not None and not (isinstance(edit, dict) and {"kind", "source", "options"} <= set(edit)
                                     and isinstance(edit["options"], dict) and "seed" in edit["options"]):
            raise ValueError(f"the edit record {str(edit)[:80]!r} lacks its kind, source or options")
        return cls(id=job_id, request=Request.from_record(rec["request"]), out_dir=Path(rec["out_dir"]),
                   reply_to=Peer("udp", str(peer[0]), int(peer[1])) if peer else None, created=created,
                   edit=edit)
