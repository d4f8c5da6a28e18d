"""The n2m panel: prompt, controls, DAW sync, queue, results; talks to the daemon over OSC.

All traffic is asynchronous (see osclink.py) and all file work for thumbnails runs in a thread
pool, so the GUI never waits. Errors appear inline under the prompt or on the job's row.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QEvent, QSettings, Qt, QTimer, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices, QFont, QKeySequence, QPalette, QShortcut
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from n2m.bridge import protocol as P
from n2m.bridge.controls import BPM_MIN, METERS, MODES, TONICS
from n2m.bridge.request import MAX_VARIATIONS, RequestError

from . import daw
from .cliplist import ClipDelegate, ClipModel, ClipRole, ClipView, WaveformCache
from .daemonproc import DaemonProcess, LaunchSpec
from .jobs import (
    DEFAULT_TAKES,
    QUALITY_PRESETS,
    Clip,
    GenerateRequest,
    Job,
    read_sidecar,
    seconds_left,
    sidecar_value,
)
from .osclink import DaemonAddress, OscLink
from .peaks import AudioReadError, duration
from .player import Player
from .settings import PanelSettings, SettingsStore
from .widgets import ElidedLabel, JobRow, PromptEdit, SettingsDialog, StatusDot

AUTO = "auto"
_JOB_EVENTS = frozenset({P.PROGRESS, P.CLIP_READY, P.DONE, P.ERROR})
START_GRACE_S = 1.5  # wait this long for /n2m/test before starting a daemon
QUEUE_KEEP_FINISHED = 3
QUEUE_MAX_HEIGHT = 190  # px; more jobs scroll


@dataclass
class DawState:
    """What the DAW last reported (through the daemon): tempo, meter, sample rate."""

    bpm: float | None = None
    meter: str | None = None
    samplerate: int | None = None
    updated: float = 0.0

    def text(self) -> str:
        parts = []
        if self.bpm:
            parts.append(f"{self.bpm:g} bpm")
        if self.meter:
            parts.append(self.meter)
        if not parts:
            return "not reported"
        if self.samplerate:
            parts.append(f"{self.samplerate / 1000:g} kHz")
        return " · ".join(parts)

    @property
    def known(self) -> bool:
        return self.bpm is not None or self.meter is not None


class Panel(QWidget):
    """The whole panel. `qsettings` is where it remembers things (tests pass a private file)."""

    clip_added = pyqtSignal(object)  # Clip
    job_changed = pyqtSignal(object)  # Job

    def __init__(
        self,
        qsettings: QSettings,
        daemon: DaemonAddress | None = None,
        autostart: bool | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("n2m")
        self.store = SettingsStore(qsettings)
        self.settings = self.store.load()
        if daemon is not None:
            self.settings.daemon = str(daemon)
        if autostart is not None:
            self.settings.autostart = autostart
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl  # replaced in tests
        self.daw = DawState()
        self.jobs: list[Job] = []  # newest last
        self._by_id: dict[str, Job] = {}
        self._awaiting_id: deque[Job] = deque()  # sent, waiting for /n2m/job
        self._unsent: deque[Job] = deque()  # made while the daemon was away
        self._rows: dict[int, JobRow] = {}
        self._seen_online = False
        self._started_at = time.monotonic()
        self.daemon_proc = DaemonProcess(self)
        self.daemon_proc.exited.connect(self._daemon_exited)
        self.last_status: dict = {}
        self._recheck_after_restart = False
        self._sync_touched = False
        self._early: dict[str, list[tuple[str, list]]] = {}
        self._shut_down = False

        self._build()
        self.link = OscLink(self._address(), self)
        self.link.message.connect(self._on_message)
        self.link.online_changed.connect(self._on_online)
        self.link.socket_error.connect(self.show_error)
        self.player = Player(self)
        self.player.position.connect(self._on_play_position)
        self.player.state_changed.connect(self._on_play_state)
        self.player.error.connect(self.show_error)
        self._load_clips()
        self._restore_form()
        self._tick = QTimer(self)
        self._tick.setInterval(500)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._update_connection()

    # ================================================================= construction ==============
    def _build(self) -> None:
        self.setMinimumWidth(280)
        root = QVBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(6)

        # header: name, connection, settings
        head = QHBoxLayout()
        title = QLabel("n2m")
        f = QFont(title.font())
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setWeight(QFont.Weight.Bold)
        title.setFont(f)
        self.dot = StatusDot()
        self.conn_label = ElidedLabel("")
        self.conn_label.setObjectName("connLabel")
        self.settings_btn = QToolButton()
        self.settings_btn.setText("⚙")
        self.settings_btn.setToolTip("Settings: daemon, output folder, format, loudness")
        self.settings_btn.setAutoRaise(True)
        self.settings_btn.clicked.connect(self.open_settings)
        head.addWidget(title)
        head.addSpacing(4)
        head.addWidget(self.dot)
        head.addWidget(self.conn_label, 1)
        head.addWidget(self.settings_btn)
        root.addLayout(head)

        # DAW sync
        sync = QHBoxLayout()
        self.sync_box = QCheckBox("Sync to DAW")
        self.sync_box.setToolTip("Use the tempo and meter the DAW reported (over OSC to the daemon)")
        self.sync_box.toggled.connect(self._apply_sync)
        self.sync_label = ElidedLabel("DAW: not reported")
        self.sync_label.setObjectName("syncLabel")
        sync.addWidget(self.sync_box)
        sync.addWidget(self.sync_label, 1)
        root.addLayout(sync)

        # prompt
        self.prompt = PromptEdit()
        self.prompt.returnPressed.connect(self.generate)
        self.prompt.setMinimumHeight(30)
        root.addWidget(self.prompt)

        # controls
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        self.bpm = QDoubleSpinBox()
        self.bpm.setRange(BPM_MIN - 1, 240.0)
        self.bpm.setDecimals(1)
        self.bpm.setSpecialValueText(AUTO)
        self.bpm.setValue(self.bpm.minimum())
        self.bpm.setSuffix(" bpm")
        self.key = QComboBox()
        self.key.addItems([AUTO, *TONICS])
        self.mode = QComboBox()
        self.mode.addItems([AUTO, *MODES])
        self.meter = QComboBox()
        self.meter.addItems([AUTO, *METERS])
        self.length = QSpinBox()
        self.length.setRange(0, 64)
        self.length.setSpecialValueText(AUTO)
        self.length_unit = QComboBox()
        self.length_unit.addItems(["bars", "sec"])
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.variations = QSpinBox()
        self.variations.setRange(1, MAX_VARIATIONS)
        self.variations.setValue(DEFAULT_TAKES)
        self.variations.setPrefix("× ")
        self.variations.setToolTip("How many variations (different seeds) to make")
        self.quality = QComboBox()
        for q in QUALITY_PRESETS:
            self.quality.addItem(q.label, q.steps)
        self.quality.setCurrentIndex(1)
        for w in (self.bpm, self.key, self.mode, self.meter, self.length, self.length_unit,
                  self.seed, self.variations, self.quality):
            w.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            w.setMinimumWidth(40)

        def lab(text: str) -> QLabel:
            lbl = QLabel(text)
            lbl.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return lbl

        grid.addWidget(lab("Tempo"), 0, 0)
        grid.addWidget(self.bpm, 0, 1)
        grid.addWidget(lab("Meter"), 0, 2)
        grid.addWidget(self.meter, 0, 3)
        grid.addWidget(lab("Key"), 1, 0)
        grid.addWidget(self.key, 1, 1)
        grid.addWidget(lab("Mode"), 1, 2)
        grid.addWidget(self.mode, 1, 3)
        grid.addWidget(lab("Length"), 2, 0)
        grid.addWidget(self.length, 2, 1)
        grid.addWidget(self.length_unit, 2, 2, 1, 2)
        grid.addWidget(lab("Seed"), 3, 0)
        grid.addWidget(self.seed, 3, 1)
        grid.addWidget(lab("Takes"), 3, 2)
        grid.addWidget(self.variations, 3, 3)
        grid.addWidget(lab("Quality"), 4, 0)
        grid.addWidget(self.quality, 4, 1, 1, 3)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(3, 2)
        root.addLayout(grid)

        # generate + inline error
        gen_row = QHBoxLayout()
        self.generate_btn = QPushButton("Generate")
        self.generate_btn.setDefault(True)
        self.generate_btn.setMinimumHeight(30)
        self.generate_btn.setToolTip("Generate (Enter in the prompt box)")
        self.generate_btn.clicked.connect(self.generate)
        self.generate_btn.setObjectName("generateButton")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the newest job (Esc)")
        self.cancel_btn.setMinimumHeight(30)
        self.cancel_btn.clicked.connect(self.cancel_latest)
        gen_row.addWidget(self.generate_btn, 3)
        gen_row.addWidget(self.cancel_btn, 1)
        root.addLayout(gen_row)
        self.error_label = QLabel("")
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d9534f;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        root.addWidget(self.error_label)

        # queue
        self.queue_title = QLabel("QUEUE")
        self.queue_title.setObjectName("sectionTitle")
        root.addWidget(self.queue_title)
        self.queue_box = QWidget()
        self.queue_layout = QVBoxLayout(self.queue_box)
        self.queue_layout.setContentsMargins(0, 0, 0, 0)
        self.queue_layout.setSpacing(2)
        self.queue_empty = QLabel("No jobs. Type a prompt and press Enter.")
        self.queue_empty.setObjectName("hint")
        self.queue_layout.addWidget(self.queue_empty)
        self.queue_scroll = QScrollArea()
        self.queue_scroll.setWidget(self.queue_box)
        self.queue_scroll.setWidgetResizable(True)
        self.queue_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.queue_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        root.addWidget(self.queue_scroll)

        # clips
        clips_head = QHBoxLayout()
        self.clips_title = QLabel("CLIPS")
        self.clips_title.setObjectName("sectionTitle")
        self.loop_box = QCheckBox("Loop")
        self.loop_box.setToolTip("Loop the preview")
        self.loop_box.toggled.connect(lambda on: self.player.set_loop(on))
        clips_head.addWidget(self.clips_title, 1)
        clips_head.addWidget(self.loop_box)
        root.addLayout(clips_head)
        self.cache = WaveformCache(self)
        self.model = ClipModel(self)
        self.model.changed.connect(self._clips_changed)
        self.view = ClipView()
        self.view.setModel(self.model)
        self.delegate = ClipDelegate(self.cache, self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.play_requested.connect(self.toggle_play)
        self.view.doubleClicked.connect(lambda _i: self.toggle_play())
        self.view.selectionModel().currentChanged.connect(lambda *_: self._update_actions())
        self.cache.ready.connect(self.model.touch_path)
        root.addWidget(self.view, 1)

        # clip actions
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
        self.vary_btn = tool("Vary", "Same prompt and controls, a new seed", self.vary)
        self.regen_btn = tool("Again", "Regenerate: same prompt, controls and seed, with the current quality and output settings", self.regenerate)
        self.daw_btn = tool("→DAW", "Send to the DAW (through its n2m adapter)", self.send_to_daw)
        self.reveal_btn = tool("Folder", "Reveal in the file manager", self.reveal)
        self.delete_btn = tool("✕", "Delete: move the clip to the Trash", self.delete_selected)
        acts.addStretch(1)
        root.addLayout(acts)

        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.cancel_latest,
                  context=Qt.ShortcutContext.WindowShortcut)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.generate,
                  context=Qt.ShortcutContext.WindowShortcut)
        self._update_actions()
        self._restyle()

    def _restyle(self) -> None:
        """Accent and section styles from the current palette (re-run when the theme changes)."""
        pal = self.palette()
        hi = pal.color(QPalette.ColorRole.Highlight)
        hi_text = pal.color(QPalette.ColorRole.HighlightedText)
        dim = pal.color(QPalette.ColorRole.PlaceholderText)
        self.generate_btn.setStyleSheet(
            f"QPushButton {{ background: {hi.name()}; color: {hi_text.name()}; font-weight: 600;"
            f" border: none; border-radius: 4px; padding: 4px 10px; }}"
            f" QPushButton:hover {{ background: {hi.lighter(112).name()}; }}"
            f" QPushButton:pressed {{ background: {hi.darker(115).name()}; }}")
        section = f"color: {dim.name()}; font-weight: 600; letter-spacing: 0.5px;"
        for lbl in (self.queue_title, self.clips_title):
            lbl.setStyleSheet(section)
        self.queue_empty.setStyleSheet(f"color: {dim.name()};")

    def changeEvent(self, event) -> None:  # noqa: ANN001
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    # ================================================================= connection ===============
    def _address(self) -> DaemonAddress:
        try:
            return DaemonAddress.parse(self.settings.daemon)
        except ValueError as exc:
            self.show_error(f"settings: {exc}; using {DaemonAddress()}")
            return DaemonAddress()

    def start(self) -> None:
        """Begin talking to the daemon (and start one if none answers and autostart is on)."""
        self._started_at = time.monotonic()
        self.link.start()
        QTimer.singleShot(int(START_GRACE_S * 1000), self._maybe_start_daemon)

    def _maybe_start_daemon(self) -> None:
        if self._shut_down:
            return
        if self.link.online or self.daemon_proc.running:
            return
        addr = self.link.address
        if not self.settings.autostart:
            self._update_connection()
            return
        if not addr.is_local:
            self.show_error(f"no daemon answers at {addr}; the panel starts one only on this machine")
            return
        self.daemon_proc.start(LaunchSpec(addr, model=self.settings.model, output_dir=self.settings.output_dir))
        self._update_connection()

    def _daemon_exited(self, why: str) -> None:
        self.show_error(why)
        self._update_connection()

    def _on_online(self, online: bool) -> None:
        if online:
            self._seen_online = True
            self.clear_error_if("daemon")
            self.link.send(P.STATUS)
            self.link.send(P.CLIPS, ["", 30])
            self._recheck_after_restart = True
            while self._unsent:
                self._send_job(self._unsent.popleft())
        else:
            for j in self.jobs:
                if j.active and j.id:
                    j.message = "waiting for the daemon…"
                    self._refresh_job(j)
            if self.settings.autostart and self.link.address.is_local:
                QTimer.singleShot(int(START_GRACE_S * 1000), self._maybe_start_daemon)
        self._update_connection()

    def _update_connection(self) -> None:
        addr = self.link.address
        if self.link.online:
            model = self.last_status.get("model") if isinstance(self.last_status, dict) else None
            self.dot.set_state("online")
            self.conn_label.setText(f"{addr}" + (f" · {model}" if isinstance(model, str) and model else ""))
        elif self.daemon_proc.running:
            self.dot.set_state("starting")
            self.conn_label.setText(f"starting daemon on {addr}…")
        else:
            self.dot.set_state("offline")
            self.conn_label.setText(f"no daemon at {addr}" + (" · reconnecting" if self._seen_online else ""))

    # ================================================================= messages =================
    def _on_message(self, address: str, args: list) -> None:
        handler = {
            P.JOB: self._msg_job, P.PROGRESS: self._msg_progress, P.CLIP_READY: self._msg_clip,
            P.ERROR: self._msg_error, P.DONE: self._msg_done, P.STATUS: self._msg_status,
            P.SET_TEMPO: self._msg_tempo, P.SET_METER: self._msg_meter,
            P.SET_SAMPLERATE: self._msg_samplerate, P.CLIPS: self._msg_clips,
        }.get(address)
        if handler is None:
            return
        if address in _JOB_EVENTS and args and self._hold_early(address, args):
            return
        with contextlib.suppress(IndexError, TypeError, ValueError):
            handler(args)

    def _hold_early(self, address: str, args: list) -> bool:
        """Events about a job id not yet named by /n2m/job, while our own requests await their
        ids: the daemon may start a job (and report progress) before its /n2m/job reply arrives.
        Such events wait and are replayed once the id is known."""
        jid = str(args[0])
        if not jid or jid in self._by_id or not self._awaiting_id:
            return False
        self._early.setdefault(jid, []).append((address, list(args)))
        return True

    def _replay_early(self, jid: str) -> None:
        for address, args in self._early.pop(jid, []):
            self._on_message(address, args)

    def _job_for(self, job_id: object, create: bool = True) -> Job | None:
        jid = str(job_id)
        job = self._by_id.get(jid)
        if job is None and create and jid:
            job = Job(GenerateRequest(prompt=""), id=jid, state="queued")  # started elsewhere
            self._by_id[jid] = job
            self.jobs.append(job)
        return job

    def _msg_job(self, args: list) -> None:
        jid = str(args[0])
        if jid in self._by_id:
            return  # the same reply again (we are also a subscriber)
        if not self._awaiting_id:
            self._job_for(jid)
            self._rebuild_queue()
            self._replay_early(jid)
            return
        job = self._awaiting_id.popleft()
        job.id = jid
        self._by_id[jid] = job
        if job.state == "cancelled":  # cancelled before the daemon named it
            self.link.send(P.CANCEL, [jid])
        elif job.state == "sending":
            job.state = "queued"
        self._refresh_job(job)
        self._replay_early(jid)
        self._flush_early_if_idle()

    def _flush_early_if_idle(self) -> None:
        """Nothing of ours awaits an id: held events belong to jobs started elsewhere."""
        if self._awaiting_id or not self._early:
            return
        for other in list(self._early):
            self._job_for(other)
            self._replay_early(other)
        self._rebuild_queue()

    def _msg_progress(self, args: list) -> None:
        job = self._job_for(args[0])
        if job is None or job.state in {"finished", "failed", "cancelled"}:
            return
        new = id(job) not in self._rows
        job.on_progress(str(args[1]), float(args[2]))
        if len(args) >= 5 and int(args[4]) > 0:  # step and total steps of a sampling stage
            job.message = f"step {int(args[3])}/{int(args[4])}"
        else:
            job.message = ""
        if new:
            self._rebuild_queue()
        self._refresh_job(job)

    def _msg_clip(self, args: list) -> None:
        job = self._job_for(args[0])
        path = str(args[1])
        samplerate = int(args[2]) if len(args) > 2 else 0
        bpm = float(args[3]) if len(args) > 3 and float(args[3]) > 0 else None
        bars = int(args[4]) if len(args) > 4 and int(args[4]) > 0 else None
        if job is not None and path not in job.clips:
            job.clips.append(path)
        if self.model.row_of(path) >= 0:
            return
        req = job.request if job is not None and job.request.prompt else None
        side = read_sidecar(path)
        prompt = str(sidecar_value(side, "prompt") or (req.prompt if req else ""))
        seed = sidecar_value(side, "seed")
        seconds = sidecar_value(side, "seconds", "duration")
        clip = Clip(
            path=path, prompt=prompt, seed=int(seed) if isinstance(seed, int | float) else None,
            bpm=bpm, bars=bars, samplerate=samplerate,
            seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
            job_id=str(args[0]), request=req,
        )
        if clip.request is None and prompt:
            clip.request = GenerateRequest(prompt=prompt, bpm=bpm, bars=bars)
        if not clip.seconds:
            self._fill_seconds(clip)
        self.model.add(clip)
        self.view.setCurrentIndex(self.model.index(0))
        self.clip_added.emit(clip)
        if job is not None:
            self._refresh_job(job)

    def _msg_clips(self, args: list) -> None:
        """The daemon's library (/n2m/clips): list past clips that are not shown yet."""
        items = json.loads(str(args[0]))
        if not isinstance(items, list):
            return
        for d in reversed(items):
            if not isinstance(d, dict) or not isinstance(d.get("path"), str):
                continue
            path = d["path"]
            if self.model.row_of(path) >= 0 or not Path(path).is_file():
                continue
            num = _numbers(d)
            seed, bars = num("seed"), num("bars")
            clip = Clip(path=path, prompt=str(d.get("prompt") or ""),
                        seed=None if seed is None else int(seed),
                        bpm=num("bpm"), bars=None if not bars else int(bars), samplerate=int(num("samplerate") or 0),
                        seconds=float(num("duration") or 0.0), favourite=bool(d.get("favourite")),
                        created=float(num("created") or time.time()))
            if clip.prompt:
                clip.request = GenerateRequest(prompt=clip.prompt, bpm=clip.bpm, bars=clip.bars)
            self.model.add(clip)

    def _fill_seconds(self, clip: Clip) -> None:
        """Length from the file's header (cheap: reads no samples)."""
        with contextlib.suppress(OSError, AudioReadError):
            clip.seconds = duration(clip.path)

    def _msg_error(self, args: list) -> None:
        jid = str(args[0]) if args else ""
        message = str(args[1]) if len(args) > 1 else "unknown error"
        job = self._by_id.get(jid) if jid else None
        if job is None and not jid and self._awaiting_id and message.startswith(P.GENERATE):
            job = self._awaiting_id.popleft()  # the request itself was refused
            message = message[len(P.GENERATE):].lstrip(": ")
            job.finish("failed", message)
            self._refresh_job(job)
            self._finished(job)
            self._flush_early_if_idle()
            return
        if job is not None:
            job.message = message
            if job.active:
                job.finish("failed", message)
                self._finished(job)
            self._refresh_job(job)
            return
        self.show_error(f"daemon: {message}")

    def _msg_done(self, args: list) -> None:
        job = self._job_for(args[0])
        if job is None:
            return
        state = str(args[1]) if len(args) > 1 else "finished"
        if state not in {"finished", "failed", "cancelled"}:
            state = "failed"
        was_active = job.active
        job.finish(state, "" if state != "failed" else (job.message or "the daemon gave no reason"))
        if was_active:
            self._finished(job)
        self._refresh_job(job)

    def _finished(self, job: Job) -> None:
        self._rebuild_queue()
        self.job_changed.emit(job)

    def _msg_status(self, args: list) -> None:
        try:
            status = json.loads(str(args[0]))
        except ValueError:
            return
        if not isinstance(status, dict):
            return
        self.last_status = status
        daw_info = status.get("daw") if isinstance(status.get("daw"), dict) else status
        bpm = daw_info.get("tempo", daw_info.get("bpm"))
        meter = daw_info.get("meter")
        sr = daw_info.get("samplerate")
        changed = False
        if isinstance(bpm, int | float) and bpm > 0 and bpm != self.daw.bpm:
            self.daw.bpm, changed = float(bpm), True
        if isinstance(meter, str) and meter and meter != self.daw.meter:
            self.daw.meter, changed = meter, True
        elif isinstance(meter, list | tuple) and len(meter) == 2:
            m = f"{int(meter[0])}/{int(meter[1])}"
            if m != self.daw.meter:
                self.daw.meter, changed = m, True
        if isinstance(sr, int | float) and sr > 0 and int(sr) != self.daw.samplerate:
            self.daw.samplerate, changed = int(sr), True
        if changed:
            self.daw.updated = time.monotonic()
            self._show_daw()
        if self._recheck_after_restart:
            self._recheck_after_restart = False
            self._drop_lost_jobs(status)
        self._update_connection()

    def _drop_lost_jobs(self, status: dict) -> None:
        """After the daemon came back: jobs it no longer knows were lost in a restart."""
        known = _job_ids_in(status)
        if known is None:
            return
        for j in self.jobs:
            if j.active and j.id and j.id not in known:
                j.finish("failed", "lost: the daemon restarted; press Again on a clip or Generate")
                self._finished(j)
                self._refresh_job(j)

    def _msg_tempo(self, args: list) -> None:
        self.daw.bpm = float(args[0])
        self.daw.updated = time.monotonic()
        self._show_daw()

    def _msg_meter(self, args: list) -> None:
        self.daw.meter = f"{int(args[0])}/{int(args[1])}"
        self.daw.updated = time.monotonic()
        self._show_daw()

    def _msg_samplerate(self, args: list) -> None:
        self.daw.samplerate = int(float(args[0]))
        self._show_daw()

    def _show_daw(self) -> None:
        self.sync_label.setText(f"DAW: {self.daw.text()}")
        if self.daw.known and not self.sync_box.isChecked() and not self._sync_touched:
            self.sync_box.setChecked(True)  # follow the DAW once it reports, unless turned off
        self._apply_sync()

    def _apply_sync(self, _on: bool | None = None) -> None:
        if self.sender() is self.sync_box:
            self._sync_touched = True
        on = self.sync_box.isChecked()
        if on and self.daw.bpm:
            self.bpm.setValue(self.daw.bpm)
        if on and self.daw.meter and self.meter.findText(self.daw.meter) >= 0:
            self.meter.setCurrentText(self.daw.meter)
        self.bpm.setEnabled(not (on and self.daw.bpm))
        self.meter.setEnabled(not (on and self.daw.meter and self.meter.findText(self.daw.meter) >= 0))

    # ================================================================= generate / cancel =========
    def current_request(self) -> GenerateRequest:
        bpm = None if self.bpm.value() <= self.bpm.minimum() else float(self.bpm.value())
        length = self.length.value() or None
        bars = length if length and self.length_unit.currentText() == "bars" else None
        seconds = float(length) if length and self.length_unit.currentText() == "sec" else None
        return GenerateRequest(
            prompt=self.prompt.text().strip(),
            bpm=bpm,
            key=None if self.key.currentText() == AUTO else self.key.currentText(),
            mode=None if self.mode.currentText() == AUTO else self.mode.currentText(),
            meter=None if self.meter.currentText() == AUTO else self.meter.currentText(),
            bars=bars,
            seconds=seconds,
            seed=None if self.seed.value() < 0 else self.seed.value(),
            variations=self.variations.value(),
            steps=self.quality.currentData(),
            extra=self.settings.generate_extras(),
        )

    def generate(self) -> Job | None:
        return self.submit(self.current_request(), remember=True)

    def submit(self, request: GenerateRequest, remember: bool = False) -> Job | None:
        """Validate, show the job in the queue, send it (or hold it until the daemon answers)."""
        try:
            request.check()
        except RequestError as exc:
            self.show_error(str(exc))
            return None
        self.clear_error()
        if remember:
            self.prompt.set_history(self.store.add_history(request.prompt))
            self._save_form()
        job = Job(request)
        self.jobs.append(job)
        if self.link.online:
            self._send_job(job)
        else:
            job.message = "waiting for the daemon…"
            self._unsent.append(job)
            if not self.daemon_proc.running:
                self._maybe_start_daemon()
        self._rebuild_queue()
        return job

    def _send_job(self, job: Job) -> None:
        job.message = ""
        job.state = "sending"
        self._awaiting_id.append(job)
        if not self.link.send(P.GENERATE, job.request.to_osc_args()):
            self._awaiting_id.remove(job)
            job.finish("failed", "could not send the request (socket error)")
        self._refresh_job(job)

    def cancel(self, job: Job) -> None:
        if not job.active:
            return
        if job in self._unsent:
            self._unsent.remove(job)
            job.finish("cancelled")
            self._finished(job)
        elif not job.id:
            job.state = "cancelled"  # the id will come; _msg_job sends the cancel then
            self._finished(job)
        else:
            job.message = "cancelling…"
            self.link.send(P.CANCEL, [job.id])
        self._refresh_job(job)

    def cancel_latest(self) -> None:
        for job in reversed(self.jobs):
            if job.active and job.message != "cancelling…":
                self.cancel(job)
                return

    # ================================================================= queue view ===============
    def _rebuild_queue(self) -> None:
        active = [j for j in self.jobs if j.active]
        done = [j for j in self.jobs if not j.active][-QUEUE_KEEP_FINISHED:]
        shown = done + active
        keep = {id(j) for j in shown}
        for key in list(self._rows):
            if key not in keep:
                row = self._rows.pop(key)
                self.queue_layout.removeWidget(row)
                row.deleteLater()
        for i, j in enumerate(shown):
            row = self._rows.get(id(j))
            if row is None:
                row = JobRow(j)
                row.cancel_clicked.connect(self.cancel)
                self._rows[id(j)] = row
            self.queue_layout.insertWidget(i, row)
            row.refresh(seconds_left(j))
        self.queue_empty.setVisible(not shown)
        self._fit_queue()
        n = len(active)
        self.queue_title.setText(f"QUEUE · {n} active" if n else "QUEUE")
        # drop old finished jobs from memory
        if len(self.jobs) > 50:
            for j in self.jobs[:-50]:
                if not j.active:
                    self._by_id.pop(j.id, None)
            self.jobs = [j for j in self.jobs[:-50] if j.active] + self.jobs[-50:]

    def _fit_queue(self) -> None:
        """Queue as tall as its rows (up to QUEUE_MAX_HEIGHT, then it scrolls)."""
        rows = [r for r in self._rows.values()]
        if rows:
            sp = self.queue_layout.spacing()
            h = sum(r.sizeHint().height() for r in rows) + sp * (len(rows) - 1)
        else:
            h = self.queue_empty.sizeHint().height()
        self.queue_scroll.setFixedHeight(min(h + 2, QUEUE_MAX_HEIGHT))

    def _refresh_job(self, job: Job) -> None:
        row = self._rows.get(id(job))
        if row is None:
            self._rebuild_queue()
        else:
            row.refresh(seconds_left(job))
            self._fit_queue()
        self.job_changed.emit(job)

    def _on_tick(self) -> None:
        for row in self._rows.values():
            if row.job.state == "running":
                row.refresh(seconds_left(row.job))
        if not self.link.online:
            self._update_connection()

    # ================================================================= clips ====================
    def selected_clip(self) -> Clip | None:
        idx = self.view.currentIndex()
        clip = idx.data(ClipRole) if idx.isValid() else None
        return clip if isinstance(clip, Clip) else None

    def _clips_changed(self) -> None:
        n = self.model.rowCount()
        self.clips_title.setText(f"CLIPS · {n}" if n else "CLIPS")
        self.store.save_recent_clips([c.to_json() for c in self.model.clips()])
        self._update_actions()

    def _load_clips(self) -> None:
        for d in reversed(self.store.recent_clips()):
            with contextlib.suppress(TypeError, ValueError):
                clip = Clip.from_json(d)
                if Path(clip.path).is_file():
                    clip.request = GenerateRequest(prompt=clip.prompt, bpm=clip.bpm, bars=clip.bars,
                                                   seed=clip.seed) if clip.prompt else None
                    self.model.add(clip)
        if self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0))

    def _update_actions(self) -> None:
        clip = self.selected_clip()
        for b in (self.play_btn, self.fav_btn, self.vary_btn, self.regen_btn, self.daw_btn,
                  self.reveal_btn, self.delete_btn):
            b.setEnabled(clip is not None)
        if clip is not None:
            self.fav_btn.setText("★" if clip.favourite else "☆")
            playing = self.player.is_playing() and self.player.path == clip.path
            self.play_btn.setText("■" if playing else "▶")
        self.daw_btn.setEnabled(clip is not None and daw.available())

    def toggle_play(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        if self.player.is_playing() and self.player.path == clip.path:
            self.player.stop()
        else:
            self.player.play(clip.path, loop=self.loop_box.isChecked())
        self._update_actions()

    def _on_play_position(self, path: str, fraction: float) -> None:
        self.delegate.playing_path = path
        self.delegate.play_fraction = fraction
        self.model.touch_path(path)

    def _on_play_state(self, playing: bool) -> None:
        if not playing:
            old = self.delegate.playing_path
            self.delegate.playing_path = ""
            self.model.touch_path(old)
        self._update_actions()

    def toggle_favourite(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        clip.favourite = not clip.favourite
        self.model.touch(self.model.row_of(clip.path))
        self.link.send(P.CLIP_FAVOURITE, [clip.path, int(clip.favourite)])  # the daemon's library too

    def vary(self) -> Job | None:
        clip = self.selected_clip()
        if clip is None or clip.request is None:
            return None
        seed = random.SystemRandom().randrange(0, 2**31 - 1)
        return self.submit(clip.request.varied(seed))

    def regenerate(self) -> Job | None:
        clip = self.selected_clip()
        if clip is None or clip.request is None:
            return None
        from dataclasses import replace

        req = replace(clip.request, seed=clip.seed if clip.seed is not None else clip.request.seed,
                      variations=1, steps=self.quality.currentData(), extra=self.settings.generate_extras())
        return self.submit(req)

    def reveal(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        folder = QUrl.fromLocalFile(str(Path(clip.path).parent))
        if not self.open_url(folder):
            self.show_error(f"could not open the file manager; the clip is in {Path(clip.path).parent}")

    def delete_selected(self) -> None:
        """Move the clip (and its sidecar) to the Trash; recoverable, so no confirmation."""
        from PyQt6.QtCore import QFile, QStandardPaths

        clip = self.selected_clip()
        if clip is None:
            return
        if self.player.path == clip.path:
            self.player.stop()
        row = self.model.row_of(clip.path)
        if Path(clip.path).exists():
            # Qt's freedesktop Trash needs the data folder to exist (a fresh account may lack it)
            data = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
            if data:
                with contextlib.suppress(OSError):
                    Path(data).mkdir(parents=True, exist_ok=True)
            ok, _ = QFile.moveToTrash(clip.path)
            if not ok:
                self.show_error(f"could not move {Path(clip.path).name} to the Trash; it is still in {Path(clip.path).parent}")
                return
            for side in (Path(clip.path).with_suffix(".json"), Path(clip.path + ".json")):
                if side.exists():
                    QFile.moveToTrash(str(side))
        self.link.send(P.CLIP_DELETE, [clip.path])  # forget it in the daemon's library
        self.model.remove(row)

    def send_to_daw(self) -> None:
        clip = self.selected_clip()
        if clip is None:
            return
        daw.send_async(self, clip.path, self.settings.daw, self._daw_result)

    def _daw_result(self, ok: bool, message: str) -> None:
        if ok:
            self.clear_error()
        else:
            self.show_error(f"send to DAW: {message}")

    # ================================================================= errors, settings =========
    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def clear_error(self) -> None:
        self.show_error("")

    def clear_error_if(self, word: str) -> None:
        if word in self.error_label.text():
            self.clear_error()

    def error_text(self) -> str:
        return self.error_label.text() if self.error_label.isVisible() else ""

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dlg.result_settings())

    def apply_settings(self, s: PanelSettings) -> None:
        self.settings = s
        self.store.save(s)
        self.link.set_address(self._address())
        self._update_connection()

    # ================================================================= form persistence =========
    def _save_form(self) -> None:
        self.store.save_form({
            "bpm": self.bpm.value(), "key": self.key.currentText(), "mode": self.mode.currentText(),
            "meter": self.meter.currentText(), "length": self.length.value(),
            "unit": self.length_unit.currentText(), "variations": self.variations.value(),
            "quality": self.quality.currentIndex(), "loop": self.loop_box.isChecked(),
        })

    def _restore_form(self) -> None:
        self.prompt.set_history(self.store.history())
        f = self.store.form()
        with contextlib.suppress(TypeError, ValueError):
            if "bpm" in f:
                self.bpm.setValue(float(f["bpm"]))
            for combo, k in ((self.key, "key"), (self.mode, "mode"), (self.meter, "meter"),
                             (self.length_unit, "unit")):
                if k in f and combo.findText(str(f[k])) >= 0:
                    combo.setCurrentText(str(f[k]))
            if "length" in f:
                self.length.setValue(int(f["length"]))
            if "variations" in f:
                self.variations.setValue(int(f["variations"]))
            if "quality" in f and 0 <= int(f["quality"]) < self.quality.count():
                self.quality.setCurrentIndex(int(f["quality"]))
            if "loop" in f:
                self.loop_box.setChecked(bool(f["loop"]))

    def shutdown(self) -> None:
        """Stop timers and the link, and the daemon only if this panel started it. Saves the form
        and the clip list; a second call (closeEvent after an explicit shutdown) does nothing."""
        if self._shut_down:
            return
        self._shut_down = True
        self._tick.stop()
        self.player.close()
        self._save_form()
        self.store.save_recent_clips([c.to_json() for c in self.model.clips()])
        self.link.stop()
        self.daemon_proc.stop()
        self.cache.close(3000)

    def closeEvent(self, event) -> None:  # noqa: ANN001
        self.shutdown()
        super().closeEvent(event)


def _numbers(d: dict) -> Callable[[str], float | None]:
    """A getter for the numeric fields of a JSON object (None where absent or not a number)."""
    return lambda k: d.get(k) if isinstance(d.get(k), int | float) and not isinstance(d.get(k), bool) else None


def _job_ids_in(status: dict) -> set[str] | None:
    """Ids of the jobs the daemon reports (queued or running), or None if it lists none."""
    found: set[str] = set()
    listed = False
    for key in ("jobs", "queue", "queued", "running", "active"):
        v = status.get(key)
        items = v if isinstance(v, list) else ([v] if isinstance(v, dict | str | int) else [])
        if v is not None:
            listed = True
        for it in items:
            if isinstance(it, dict) and "id" in it:
                found.add(str(it["id"]))
            elif isinstance(it, str | int):
                found.add(str(it))
    return found if listed else None
