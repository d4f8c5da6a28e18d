"""The clips pane: the clip list (filled from the daemon's library and from finished jobs), its
preview player, and the actions on the selected clip (play, favourite, roll a new seed, again,
send to the DAW, reveal, delete; the edits of a clip are in editbar.py)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import QFile, QStandardPaths, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from n2m.bridge import protocol as P

from . import daw
from .cliplist import ClipDelegate, ClipModel, ClipRole, ClipView, WaveformCache
from .jobs import Clip, GenerateRequest, Job, read_sidecar, sidecar_value
from .peaks import AudioReadError, duration
from .player import Player
from .tracker import ClipReady

Send = Callable[[str, list], bool]


def _number(d: dict, key: str) -> float | None:
    v = d.get(key)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def library_clip(d: dict) -> Clip | None:
    """A clip from one `/n2m/clips` entry; None when the entry has no path."""
    if not isinstance(d, dict) or not isinstance(d.get("path"), str) or not d["path"]:
        return None
    seed, bars, bpm, cid = _number(d, "seed"), _number(d, "bars"), _number(d, "bpm"), _number(d, "id")
    edit = d.get("edit") if isinstance(d.get("edit"), dict) else {}
    clip = Clip(path=d["path"], prompt=str(d.get("prompt") or ""), seed=None if seed is None else int(seed),
                bpm=bpm or None, bars=int(bars) if bars else None, samplerate=int(_number(d, "samplerate") or 0),
                seconds=float(_number(d, "duration") or 0.0), favourite=bool(d.get("favourite")),
                created=float(_number(d, "created") or time.time()), id=None if cid is None else int(cid),
                edit=str(edit.get("kind") or ""))
    if clip.prompt:
        clip.request = GenerateRequest(prompt=clip.prompt, bpm=clip.bpm, bars=clip.bars)
    return clip


def ready_clip(job: Job, ready: ClipReady) -> Clip:
    """A clip from `/n2m/clip/ready`, with the prompt and seed from its sidecar (or the request)."""
    req = job.request if isinstance(job.request, GenerateRequest) and job.request.prompt else None
    side = read_sidecar(ready.path)
    prompt = str(sidecar_value(side, "prompt") or (req.prompt if req else ""))
    seed = sidecar_value(side, "seed")
    seconds = sidecar_value(side, "seconds", "duration")
    clip = Clip(path=ready.path, prompt=prompt, seed=int(seed) if isinstance(seed, int | float) else None,
                bpm=ready.bpm, bars=ready.bars, samplerate=ready.samplerate,
                seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
                job_id=ready.job_id, request=req, id=ready.clip_id,
                edit=side["edit"] if isinstance(side.get("edit"), str) else "")
    if clip.request is None and prompt:
        clip.request = GenerateRequest(prompt=prompt, bpm=ready.bpm, bars=ready.bars)
    if not clip.seconds:
        with contextlib.suppress(OSError, AudioReadError):
            clip.seconds = duration(clip.path)
    return clip


class ClipsPane(QWidget):
    """Clip list, player and clip actions. `send` reaches the daemon's library (favourite,
    delete); `vary_requested` and `again_requested` ask the panel to submit a request."""

    clip_added = pyqtSignal(object)  # Clip
    error = pyqtSignal(str)  # to show under the prompt; "" clears it
    vary_requested = pyqtSignal()
    again_requested = pyqtSignal()

    def __init__(self, send: Send, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.send = send
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl  # replaced in tests
        self.daw_name = ""  # the DAW adapter "send to DAW" uses ("" = first available)
        self.player = Player(self)
        self.player.position.connect(self._on_play_position)
        self.player.state_changed.connect(lambda _playing: self._on_play_state())
        self.player.error.connect(self.error)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(6)
        root.addLayout(self._head())
        self.cache = WaveformCache(self)
        self.model = ClipModel(self)
        self.model.changed.connect(self._clips_changed)
        self.view = ClipView()
        self.view.setModel(self.model)
        self.delegate = ClipDelegate(self.cache, self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.play_requested.connect(self.toggle_play)
        self.view.doubleClicked.connect(lambda _i: self.toggle_play())
        self.view.selectionModel().currentChanged.connect(lambda *_: self.update_actions())
        self.cache.ready.connect(self.model.touch_path)
        root.addWidget(self.view, 1)
        root.addLayout(self._actions())
        self.update_actions()

    def _head(self) -> QHBoxLayout:
        head = QHBoxLayout()
        self.clips_title = QLabel("CLIPS")
        self.clips_title.setObjectName("sectionTitle")
        self.loop_box = QCheckBox("Loop")
        self.loop_box.setToolTip("Loop the preview")
        self.loop_box.toggled.connect(self.player.set_loop)
        head.addWidget(self.clips_title, 1)
        head.addWidget(self.loop_box)
        return head

    def _actions(self) -> QHBoxLayout:
        acts = QHBoxLayout()
        acts.setSpacing(2)

        def tool(text: str, tip: str, slot: Callable[[], None]) -> QToolButton:
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            b.clicked.connect(slot)
            acts.addWidget(b)
            return b

        self.play_btn = tool("▶", "Play / stop the selected clip (Space)", self.toggle_play)
        self.fav_btn = tool("☆", "Favourite", self.toggle_favourite)
        self.vary_btn = tool("Roll", "Roll again: same prompt and controls, a new seed", self.vary_requested.emit)
        self.regen_btn = tool("Again", "Regenerate: same prompt, controls and seed, with the current "
                              "quality and output settings", self.again_requested.emit)
        self.daw_btn = tool("→DAW", "Send to the DAW (through its n2m adapter)", self.send_to_daw)
        self.reveal_btn = tool("Folder", "Reveal in the file manager", self.reveal)
        self.delete_btn = tool("✕", "Delete: move the clip to the Trash", self.delete_selected)
        acts.addStretch(1)
        return acts

    # -- the list ----------------------------------------------------------------------------------
    def selected_clip(self) -> Clip | None:
        idx = self.view.currentIndex()
        clip = idx.data(ClipRole) if idx.isValid() else None
        return clip if isinstance(clip, Clip) else None

    def add_ready(self, job: Job, ready: ClipReady) -> None:
        """A clip a job just finished: listed on top and selected."""
        if self.model.row_of(ready.path) >= 0:
            return
        clip = ready_clip(job, ready)
        self.view.setCurrentIndex(self.model.index(self.model.add(clip)))
        self.clip_added.emit(clip)

    def load_library(self, items: object) -> None:
        """The daemon's library (`/n2m/clips`, newest first): list the clips not shown yet whose
        files are still there."""
        if not isinstance(items, list):
            return
        for d in reversed(items):
            clip = library_clip(d)
            if clip is None or self.model.row_of(clip.path) >= 0 or not Path(clip.path).is_file():
                continue
            self.model.add(clip)
        if self.selected_clip() is None and self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0))

    def on_library_reply(self, address: str, args: list) -> None:
        """The library's answers to favourite and delete (from this panel or another sender)."""
        if not args or not isinstance(args[0], str):
            return
        row = self.model.row_of(args[0])
        if row < 0:
            return
        if address == P.CLIP_DELETE:
            self.model.remove(row)
        elif address == P.CLIP_FAVOURITE and len(args) > 1:
            clip = self.model.clip(row)
            if clip is not None and clip.favourite != bool(args[1]):
                clip.favourite = bool(args[1])
                self.model.touch(row)

    def _clips_changed(self) -> None:
        n = self.model.rowCount()
        self.clips_title.setText(f"CLIPS · {n}" if n else "CLIPS")
        self.update_actions()

    def update_actions(self) -> None:
        clip = self.selected_clip()
        for b in (self.play_btn, self.fav_btn, self.vary_btn, self.regen_btn, self.daw_btn,
                  self.reveal_btn, self.delete_btn):
            b.setEnabled(clip is not None)
        if clip is not None:
            self.fav_btn.setText("★" if clip.favourite else "☆")
            playing = self.player.is_playing() and self.player.path == clip.path
            self.play_btn.setText("■" if playing else "▶")
        self.daw_btn.setEnabled(clip is not None and daw.available())

    # -- playing -----------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        if self.player.is_playing() and self.player.path == clip.path:
            self.player.stop()
        else:
            self.player.play(clip.path, loop=self.loop_box.isChecked())
        self.update_actions()

    def _on_play_position(self, path: str, fraction: float) -> None:
        self.delegate.playing_path = path
        self.delegate.play_fraction = fraction
        self.model.touch_path(path)

    def _on_play_state(self) -> None:
        if not self.player.is_playing():
            old = self.delegate.playing_path
            self.delegate.playing_path = ""
            self.model.touch_path(old)
        self.update_actions()

    # -- actions -----------------------------------------------------------------------------------
    def toggle_favourite(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        clip.favourite = not clip.favourite
        self.model.touch(self.model.row_of(clip.path))
        self.send(P.CLIP_FAVOURITE, [clip.path, int(clip.favourite)])  # kept in the daemon's library

    def varied_request(self) -> GenerateRequest | None:
        """The selected clip's request with a new random seed."""
        clip = self.selected_clip()
        if clip is None or clip.request is None:
            return None
        return clip.request.varied(random.SystemRandom().randrange(0, 2**31 - 1))

    def again_request(self, steps: int | None, extra: tuple[tuple[str, str], ...]) -> GenerateRequest | None:
        """The selected clip's request and seed, one take, with the current quality and settings."""
        clip = self.selected_clip()
        if clip is None or clip.request is None:
            return None
        seed = clip.seed if clip.seed is not None else clip.request.seed
        return replace(clip.request, seed=seed, variations=1, steps=steps, extra=extra)

    def reveal(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        folder = Path(clip.path).parent
        if not self.open_url(QUrl.fromLocalFile(str(folder))):
            self.error.emit(f"could not open the file manager; the clip is in {folder}")

    def delete_selected(self) -> None:
        """Move the clip (and its sidecar) to the Trash; recoverable, so no confirmation."""
        clip = self.selected_clip()
        if clip is None:
            return
        if self.player.path == clip.path:
            self.player.stop()
        path = Path(clip.path)
        if path.exists():
            # Qt's freedesktop Trash needs the data folder to exist (a fresh account may lack it)
            data = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
            if data:
                with contextlib.suppress(OSError):
                    Path(data).mkdir(parents=True, exist_ok=True)
            ok, _ = QFile.moveToTrash(clip.path)
            if not ok:
                self.error.emit(f"could not move {path.name} to the Trash; it is still in {path.parent}")
                return
            for side in (path.with_suffix(".json"), Path(clip.path + ".json")):
                if side.exists():
                    QFile.moveToTrash(str(side))
        self.send(P.CLIP_DELETE, [clip.path])  # forget it in the daemon's library
        self.model.remove(self.model.row_of(clip.path))

    def send_to_daw(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        daw.send_async(self, clip.path, self.daw_name, self._daw_result)

    def _daw_result(self, ok: bool, message: str) -> None:
        self.error.emit("" if ok else f"send to DAW: {message}")

    def close_down(self) -> None:
        """Release the player and the thumbnail threads."""
        self.player.close()
        self.cache.close(3000)
