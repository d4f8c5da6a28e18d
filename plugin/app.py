"""`n2m panel`: open the panel, or render it after a real generation to a PNG (`--screenshot`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PROMPT = "dusty boom-bap beat with rhodes chords, 88 bpm, A minor, 4 bars"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="n2m panel", description="The n2m panel: prompt box beside the DAW.")
    p.add_argument("--daemon", metavar="HOST:PORT", help="the daemon to talk to (default: from settings, 127.0.0.1:9797)")
    p.add_argument("--screenshot", metavar="PATH", help="render the panel after a real generation to this PNG and exit")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt for --screenshot")
    p.add_argument("--model", metavar="DIR", help="model for a daemon the panel starts")
    p.add_argument("--no-autostart", action="store_true", help="never start a daemon")
    p.add_argument("--theme", choices=("system", "dark", "light"), default="system")
    p.add_argument("--settings", metavar="INI", help="keep settings in this file instead of the user's store")
    p.add_argument("--size", default="360x820", help="window size WxH (default 360x820)")
    p.add_argument("--timeout", type=float, default=300.0, help="--screenshot gives up after this many seconds")
    return p


@dataclass
class ScreenshotRun:
    """Drives one real generation, then a second one, and grabs while the second is in progress."""

    path: Path
    prompt: str
    timeout_s: float
    rc: int = 1
    phase: str = "connecting"
    jobs: dict = field(default_factory=dict)  # phase -> the Job submitted in it


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"n2m panel: bad --size {args.size!r}; use WxH such as 360x820", file=sys.stderr)
        return 2

    from PyQt6.QtCore import QSettings, QTimer
    from PyQt6.QtWidgets import QApplication

    from .osclink import DaemonAddress
    from .panel import Panel
    from .theme import apply_theme, follow_system

    try:
        daemon = DaemonAddress.parse(args.daemon) if args.daemon else None
    except ValueError as exc:
        print(f"n2m panel: --daemon: {exc}", file=sys.stderr)
        return 2

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("n2m panel")
    app.setOrganizationName("n2m")
    apply_theme(app, args.theme)
    if args.theme == "system":
        follow_system(app)

    tmp: tempfile.TemporaryDirectory | None = None
    if args.settings:
        qs = QSettings(args.settings, QSettings.Format.IniFormat)
    elif args.screenshot:  # a clean, reproducible picture: do not read or touch the user's store
        tmp = tempfile.TemporaryDirectory(prefix="n2m-panel-")
        qs = QSettings(str(Path(tmp.name) / "panel.ini"), QSettings.Format.IniFormat)
    else:
        qs = QSettings("n2m", "panel")
    panel = Panel(qs, daemon=daemon, autostart=False if args.no_autostart else None)
    if args.model:
        panel.settings.model = args.model
    panel.resize(w, h)
    panel.show()
    panel.start()

    if not args.screenshot:
        rc = app.exec()
        return int(rc)

    run = ScreenshotRun(Path(args.screenshot), args.prompt, args.timeout)
    _drive_screenshot(app, panel, run, QTimer)
    app.exec()
    panel.shutdown()
    if tmp is not None:
        tmp.cleanup()
    return run.rc


def _drive_screenshot(app, panel, run: ScreenshotRun, QTimer) -> None:  # noqa: ANN001, N803
    def grab_and_quit(rc: int, why: str = "") -> None:
        if run.phase == "done":
            return
        run.phase = "done"
        panel.repaint()
        panel.cache.wait(5000)
        app.processEvents()
        run.path.parent.mkdir(parents=True, exist_ok=True)
        ok = panel.grab().save(str(run.path))
        if ok:
            print(f"n2m panel: screenshot written to {run.path}" + (f" ({why})" if why else ""))
        else:
            print(f"n2m panel: could not write {run.path}", file=sys.stderr)
        run.rc = rc if ok else 1
        for j in panel.jobs:
            if j.active:
                panel.cancel(j)
        QTimer.singleShot(300, app.quit)

    def on_online(online: bool) -> None:
        if online and run.phase == "connecting":
            run.phase = "first"
            panel.prompt.setText(run.prompt)
            panel.prompt.setCursorPosition(0)
            panel.variations.setValue(2)
            panel.quality.setCurrentIndex(0)
            run.jobs["first"] = panel.generate()
            if run.jobs["first"] is None:
                grab_and_quit(1, f"the request was refused: {panel.error_text()}")

    def on_job(job) -> None:  # noqa: ANN001
        QTimer.singleShot(0, lambda: after_job(job))  # let the panel finish handling the event

    def after_job(job) -> None:  # noqa: ANN001
        if job is not run.jobs.get(run.phase):
            return
        if run.phase == "first" and job.state in {"finished", "failed", "cancelled"}:
            if job.state != "finished":
                grab_and_quit(1, f"the generation {job.state}: {job.message}")
                return
            run.phase = "second"
            panel.prompt.setText("warm lo-fi keys, vinyl crackle, 3/4")
            panel.prompt.setCursorPosition(0)
            panel.variations.setValue(1)
            panel.quality.setCurrentIndex(2)  # more steps: long enough to be seen in progress
            run.jobs["second"] = panel.generate()
        elif run.phase == "second" and job.state == "running" and job.fraction >= 0.3:
            panel.view.setCurrentIndex(panel.model.index(0))
            grab_and_quit(0)
        elif run.phase == "second" and not job.active:
            grab_and_quit(0 if job.state == "finished" else 1, f"second job {job.state}")

    panel.link.online_changed.connect(on_online)
    panel.job_changed.connect(on_job)
    QTimer.singleShot(int(run.timeout_s * 1000),
                      lambda: grab_and_quit(1, f"timed out after {run.timeout_s:g} s; {panel.error_text()}"))
