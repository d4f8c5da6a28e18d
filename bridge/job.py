"""One daemon job: the request it was accepted with, its state, and its record in the library.

`Job.record()` is everything needed to run the job again after the daemon died (JSON-able, kept
in the library's jobs table); `Job.from_record` rebuilds it, so a restarted daemon makes the same
clips (same seeds, variations, steps, format, folder) under the same job id.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from n2m.bridge.controls import Controls
from n2m.bridge.osc import Peer
from n2m.bridge.pipeline import PipelineOptions

RECORD_VERSION = 1


@dataclass
class Job:
    id: str
    prompt: str
    controls: Controls
    seed: int
    variations: int
    steps: int | None
    guidance: float | None
    sampler: str | None
    options: PipelineOptions
    name: str | None
    out_dir: Path
    reply_to: Peer | None  # None: a job run again after a restart, whose sender is unknown
    state: str = "queued"
    error: str | None = None
    decoder: str | None = None
    clips: list[str] = field(default_factory=list)
    done: set[int] = field(default_factory=set)  # variation indices already written
    cancel: threading.Event = field(default_factory=threading.Event)
    shutdown: bool = False
    created: float = field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "prompt": self.prompt, "seed": self.seed,
                "controls": self.controls.as_dict(), "clips": self.clips, "error": self.error}

    def record(self) -> dict[str, Any]:
        """The request as accepted, for running it again after a crash."""
        peer = None
        if self.reply_to is not None and self.reply_to.proto == "udp":  # a TCP connection dies with us
            peer = [self.reply_to.host, self.reply_to.port]
        return {"version": RECORD_VERSION, "prompt": self.prompt, "controls": self.controls.as_dict(),
                "seed": self.seed, "variations": self.variations, "steps": self.steps,
                "guidance": self.guidance, "sampler": self.sampler, "decoder": self.decoder,
                "options": asdict(self.options), "name": self.name, "out_dir": str(self.out_dir),
                "reply_to": peer}

    @classmethod
    def from_record(cls, job_id: str, rec: dict[str, Any], created: float) -> Job:
        """A job rebuilt from `record()`; KeyError/TypeError/ValueError if the record is damaged."""
        if rec.get("version") != RECORD_VERSION:
            raise ValueError(f"job record version {rec.get('version')!r}")
        peer = rec.get("reply_to")
        return cls(
            id=job_id, prompt=str(rec["prompt"]), controls=Controls(**rec["controls"]),
            seed=int(rec["seed"]), variations=int(rec["variations"]), steps=rec["steps"],
            guidance=rec["guidance"], sampler=rec["sampler"], decoder=rec["decoder"],
            options=PipelineOptions(**rec["options"]).validated(), name=rec["name"],
            out_dir=Path(rec["out_dir"]),
            reply_to=Peer("udp", str(peer[0]), int(peer[1])) if peer else None, created=created)
