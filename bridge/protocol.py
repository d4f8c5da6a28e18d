"""The OSC namespace of the n2m daemon: addresses and defaults, shared by daemon, panel and DAW scripts.

Documented for people in docs/osc.md. Replies go to the sender and to every subscriber.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9797  # UDP and TCP (OSC 1.0 length-prefixed framing) on the same number
MAX_DATAGRAM = 65507  # largest UDP payload accepted (python-osc's stock server stops at 8 KiB)
DEFAULT_QUEUE = 16

# requests (DAW or panel -> daemon)
TEST = "/n2m/test"  # -> /n2m/test "ok" version model
GENERATE = "/n2m/generate"  # prompt [bpm key bars seed] ["key=value" ...] -> /n2m/job id tag
EXTEND = "/n2m/extend"  # source (path or clip id) ["prompt"] "bars=N" ["key=value" ...] -> /n2m/job id tag
INPAINT = "/n2m/inpaint"  # source ["prompt"] "bars=A-B" ["key=value" ...] -> /n2m/job id tag
VARY = "/n2m/vary"  # source ["prompt"] "strength=S" ["variations=K"] ["key=value" ...] -> /n2m/job id tag
EDIT_ADDRESSES = {"extend": EXTEND, "inpaint": INPAINT, "vary": VARY}
QUEUEING = (GENERATE, EXTEND, INPAINT, VARY)  # requests that queue a job (a refusal echoes their tag=)
CANCEL = "/n2m/cancel"  # id
STATUS = "/n2m/status"  # -> /n2m/status json
SUBSCRIBE = "/n2m/subscribe"  # host port
UNSUBSCRIBE = "/n2m/unsubscribe"  # host port
SET_TEMPO = "/n2m/set/tempo"  # bpm (the DAW's tempo; used when a request gives none)
SET_METER = "/n2m/set/meter"  # numerator denominator
SET_SAMPLERATE = "/n2m/set/samplerate"  # Hz
CLIPS = "/n2m/clips"  # [query] [limit] -> /n2m/clips json
CLIP_FAVOURITE = "/n2m/clip/favourite"  # path on(0|1) -> /n2m/clip/favourite path on
CLIP_DELETE = "/n2m/clip/delete"  # path -> /n2m/clip/delete path (the library row; files are the caller's)

# events (daemon -> sender and subscribers)
JOB = "/n2m/job"  # id tag (the request's tag= option, "" when none)
PROGRESS = "/n2m/progress"  # id stage fraction (0-1 over the whole job) step steps
CLIP_READY = "/n2m/clip/ready"  # id path samplerate bpm bars clip_id (the library's id of the clip)
ERROR = "/n2m/error"  # id message [tag]  (id "" when not about a job; tag: a refused request's tag=)
DONE = "/n2m/done"  # id state ("finished" | "failed" | "cancelled")
