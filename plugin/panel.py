"""The n2m panel: the header and connection, the request form, DAW sync, the job queue and the
clips, composed into one narrow window that talks to the daemon over OSC.

All traffic is asynchronous (see osclink.py) and all file work for thumbnails runs in a thread
pool, so the GUI never waits. Errors appear inline under the prompt or on the job's row. The
parts live in their own modules: the form (form.py), DAW sync (dawsync.py), the jobs and their
events (tracker.py, no Qt), the queue's rows (queueview.py), the clip list with its actions
(clipspane.py) and the edits of a clip or of an audio file dropped on the panel (editbar.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from PyQt6.QtCore import QEvent, QSettings, Qt, QTimer, QUrl, pyqtSignal
from PyQt6.QtGui import QFont, QKeySequence, QPalette, QShortcut
from PyQt6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from n2m.bridge import protocol as P
from n2m.bridge.request import RequestError

from .clipspane import ClipsPane
from .daemonproc import DaemonProcess, LaunchSpec
from .dawsync import DawSyncBar
from .editbar import EditBar
from .form import RequestForm
from .jobs import EditRequest, GenerateRequest, Job
from .osclink import DaemonAddress, OscLink
from .queueview import QueueView
from .settings import PanelSettings, SettingsStore
from .tracker import JobTracker
from .widgets import ElidedLabel, SettingsDialog, StatusDot

log = logging.getLogger(__name__)

START_GRACE_S = 1.5  # wait this long for /n2m/test before starting a daemon
LIBRARY_CLIPS = 30  # clips asked of the daemon's library when it comes online
_DAW = (P.SET_TEMPO, P.SET_METER, P.SET_SAMPLERATE)
_LIBRARY = (P.CLIP_FAVOURITE, P.CLIP_DELETE)
# the parts' widgets and actions, also reachable as attributes of the panel (app.py, tests)
_FORM_PARTS = ("prompt", "bpm", "key", "mode", "meter", "length", "length_unit", "seed", "variations", "quality")
_CLIP_PARTS = ("model", "view", "cache", "delegate", "player", "clips_title", "loop_box", "play_btn", "fav_btn",
               "vary_btn", "regen_btn", "daw_btn", "reveal_btn", "delete_btn", "selected_clip", "toggle_play",
               "toggle_favourite", "reveal", "delete_selected", "send_to_daw")


class Panel(QWidget):
    """The whole panel. `qsettings` is where it remembers things (tests pass a private file)."""

    clip_added = pyqtSignal(object)  # Clip
    job_changed = pyqtSignal(object)  # Job

    def __init__(self, qsettings: QSettings, daemon: DaemonAddress | None = None,
                 autostart: bool | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("n2m")
        self.store = SettingsStore(qsettings)
        self.settings = self.store.load()
        if daemon is not None:
            self.settings.daemon = str(daemon)
        if autostart is not None:
            self.settings.autostart = autostart
        self._seen_online = False
        self._shut_down = False
        self.last_status: dict = {}
        self.daemon_proc = DaemonProcess(self)
        self.daemon_proc.exited.connect(self._daemon_exited)
        self.tracker = JobTracker(self._send)
        self.tracker.on_change = self._refresh_job
        self.tracker.on_finish = lambda _job: self._rebuild_queue()
        self.tracker.on_clip = lambda job, ready: self.clips.add_ready(job, ready)
        self.tracker.on_error = lambda text: self.show_error(f"daemon: {text}")

        self._build()
        self.link = OscLink(self._address(), self)
        self.link.message.connect(self._on_message)
        self.link.online_changed.connect(self._on_online)
        self.link.socket_error.connect(self.show_error)
        self._restore_form()
        self._tick = QTimer(self)
        self._tick.setInterval(500)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._update_connection()

    @property
    def jobs(self) -> list[Job]:
        return self.tracker.jobs

    @property
    def open_url(self) -> Callable[[QUrl], bool]:
        return self.clips.open_url

    @open_url.setter
    def open_url(self, fn: Callable[[QUrl], bool]) -> None:
        self.clips.open_url = fn

    # ================================================================= construction ==============
    def _build(self) -> None:
        self.setMinimumWidth(280)
        root = QVBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(6)
        root.addLayout(self._header())
        self.form = RequestForm()
        self.form.submitted.connect(self.generate)
        self.sync = DawSyncBar(self.form.follow_daw)
        self.sync_box, self.sync_label = self.sync.sync_box, self.sync.sync_label
        root.addWidget(self.sync)
        root.addWidget(self.form)
        root.addLayout(self._generate_row())
        self.error_label = QLabel("")
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d9534f;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        root.addWidget(self.error_label)
        self.queue = QueueView()
        self.queue.cancel_clicked.connect(self.cancel)
        self.queue_title, self._rows = self.queue.title, self.queue.rows
        root.addWidget(self.queue)
        self.clips = ClipsPane(self._send)
        self.clips.clip_added.connect(self.clip_added)
        self.clips.error.connect(self.show_error)
        self.clips.vary_requested.connect(self.vary)
        self.clips.again_requested.connect(self.regenerate)
        self.clips.daw_name = self.settings.daw
        root.addWidget(self.clips, 1)
        self.edits = EditBar(self.clips.selected_clip, self.form.variations.value, self.submit)
        self.clips.view.selectionModel().currentChanged.connect(lambda *_: self.edits.update_source())
        self.clips.view.clicked.connect(lambda _i: self.edits.clear_file())  # pointing at a clip again
        root.addWidget(self.edits)
        self.setAcceptDrops(True)  # an audio file from the DAW or the desktop becomes the edits' source
        for name in _FORM_PARTS:
            setattr(self, name, getattr(self.form, name))
        for name in _CLIP_PARTS:
            setattr(self, name, getattr(self.clips, name))
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.cancel_latest,
                  context=Qt.ShortcutContext.WindowShortcut)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.generate,
                  context=Qt.ShortcutContext.WindowShortcut)
        self._restyle()

    def _header(self) -> QHBoxLayout:
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
        return head

    def _generate_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
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
        row.addWidget(self.generate_btn, 3)
        row.addWidget(self.cancel_btn, 1)
        return row

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
        for lbl in (self.queue_title, self.clips.clips_title, self.edits.title):
            lbl.setStyleSheet(section)
        self.queue.empty.setStyleSheet(f"color: {dim.name()};")

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

    def _send(self, address: str, args: list) -> bool:
        return self.link.send(address, args)

    def start(self) -> None:
        """Begin talking to the daemon (and start one if none answers and autostart is on)."""
        self.link.start()
        QTimer.singleShot(int(START_GRACE_S * 1000), self._maybe_start_daemon)

    def _maybe_start_daemon(self) -> None:
        if self._shut_down or self.link.online or self.daemon_proc.running:
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
            self.link.send(P.CLIPS, ["", LIBRARY_CLIPS])
            self.tracker.went_online()
        else:
            self.tracker.went_offline()
            if self.settings.autostart and self.link.address.is_local:
                QTimer.singleShot(int(START_GRACE_S * 1000), self._maybe_start_daemon)
        self._update_connection()

    def _update_connection(self) -> None:
        addr = self.link.address
        if self.link.online:
            model = self.last_status.get("model")
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
        if self.tracker.handle(address, args):
            return
        if address in _DAW:
            self.sync.on_message(address, args)
        elif address in _LIBRARY:
            self.clips.on_library_reply(address, args)
        elif address in (P.STATUS, P.CLIPS):
            try:
                data = json.loads(args[0]) if args and isinstance(args[0], str) else None
            except ValueError as exc:
                data = None
                log.warning("%s: not JSON (%s); ignored", address, exc)
            if address == P.CLIPS:
                self.clips.load_library(data)
            elif isinstance(data, dict):
                self._on_status(data)
            else:
                log.warning("%s: expected a JSON object; ignored", address)

    def _on_status(self, status: dict) -> None:
        self.last_status = status
        self.sync.on_status(status)
        self.tracker.check_status(status)
        self._update_connection()

    # ================================================================= generate / cancel =========
    def current_request(self) -> GenerateRequest:
        return self.form.request(self.settings.generate_extras())

    def generate(self) -> Job | None:
        return self.submit(self.current_request(), remember=True)

    def submit(self, request: GenerateRequest | EditRequest, remember: bool = False) -> Job | None:
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
        job = self.tracker.submit(request, self.link.online)
        if not self.link.online and not self.daemon_proc.running:
            self._maybe_start_daemon()
        self._rebuild_queue()
        return job

    def cancel(self, job: Job) -> None:
        self.tracker.cancel(job)

    def cancel_latest(self) -> None:
        job = self.tracker.latest_active()
        if job is not None:
            self.cancel(job)

    def vary(self) -> Job | None:
        req = self.clips.varied_request()
        return None if req is None else self.submit(req)

    def regenerate(self) -> Job | None:
        req = self.clips.again_request(self.form.steps(), self.settings.generate_extras())
        return None if req is None else self.submit(req)

    # ================================================================= drops ====================
    def dragEnterEvent(self, event) -> None:  # noqa: ANN001, N802
        if event.source() is None and event.mimeData().hasUrls():  # from outside: the DAW, the desktop
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: ANN001, N802
        if event.source() is None:
            why = self.edits.drop(event.mimeData())
            self.show_error(why)
            if not why:
                event.acceptProposedAction()

    # ================================================================= queue view ===============
    def _rebuild_queue(self) -> None:
        self.tracker.trim()
        self.queue.show_jobs(self.tracker.jobs)

    def _refresh_job(self, job: Job) -> None:
        if not self.queue.refresh(job):
            self._rebuild_queue()
        self.job_changed.emit(job)

    def _on_tick(self) -> None:
        self.queue.tick()
        if not self.link.online:
            self._update_connection()

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
        self.clips.daw_name = s.daw
        self.link.set_address(self._address())
        self._update_connection()

    def _save_form(self) -> None:
        self.store.save_form({**self.form.state(), "loop": self.clips.loop_box.isChecked()})

    def _restore_form(self) -> None:
        self.prompt.set_history(self.store.history())
        state = self.store.form()
        self.form.restore(state)
        if "loop" in state:
            self.clips.loop_box.setChecked(bool(state["loop"]))

    def shutdown(self) -> None:
        """Stop timers and the link, and the daemon only if this panel started it. Saves the form;
        a second call (closeEvent after an explicit shutdown) does nothing."""
        if self._shut_down:
            return
        self._shut_down = True
        self._tick.stop()
        self._save_form()
        self.link.stop()
        self.daemon_proc.stop()
        self.clips.close_down()

    def closeEvent(self, event) -> None:  # noqa: ANN001
        self.shutdown()
        super().closeEvent(event)
