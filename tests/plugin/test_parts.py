"""The panel's parts without a daemon: audio reading, requests, ETA, drag copies, settings, the form."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from plugin_helpers import tone, write_float32, write_pcm24
from PyQt6.QtCore import Qt

from n2m.bridge.request import RequestError
from n2m.plugin.jobs import Clip, GenerateRequest, Job, format_eta, read_sidecar, seconds_left
from n2m.plugin.osclink import DaemonAddress, decode, encode
from n2m.plugin.peaks import AudioReadError, compute_peaks, read_audio

# -- audio reading--------------------------------------------------------------------------------


def test_reads_24bit_pcm_stereo(tmp_path):
    x = tone(0.25, 44100, channels=2)
    a = read_audio(write_pcm24(tmp_path / "a.wav", x, 44100))
    assert (a.samplerate, a.channels, a.frames) == (44100, 2, len(x))
    assert np.max(np.abs(a.samples - x)) < 2e-7 * 8  # 24-bit quantisation
    assert a.seconds == pytest.approx(0.25, abs=1e-4)


def test_reads_float32_wav_that_the_wave_module_refuses(tmp_path):
    import wave

    x = tone(0.2, 48000) * 1.0
    path = write_float32(tmp_path / "f.wav", x, 48000)
    with pytest.raises(wave.Error), wave.open(str(path), "rb"):
        pass
    a = read_audio(path)
    assert a.samplerate == 48000 and a.channels == 1
    np.testing.assert_array_equal(a.samples, x)


def test_reads_flac(tmp_path):
    from pedalboard.io import AudioFile

    x = tone(0.25, 48000, channels=2)
    with AudioFile(str(tmp_path / "a.flac"), "w", 48000, 2, bit_depth=24) as f:
        f.write(x.T)
    a = read_audio(tmp_path / "a.flac")
    assert (a.samplerate, a.channels, a.frames) == (48000, 2, len(x))
    assert np.max(np.abs(a.samples - x)) < 1e-5
    assert compute_peaks(a, 10).high[0] > 0.4


def test_peaks_follow_the_envelope(tmp_path):
    x = tone(0.5, 16000)
    p = compute_peaks(read_audio(write_pcm24(tmp_path / "p.wav", x, 16000)), 50)
    assert len(p.high) == 50 and np.all(p.low <= p.high)
    assert p.high[0] > 0.4 and p.high[-1] < 0.05  # the tone fades out
    assert p.seconds == pytest.approx(0.5)


def test_not_a_wav_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"hello, not audio")
    with pytest.raises(AudioReadError, match="not a RIFF/WAVE"):
        read_audio(bad)
    with pytest.raises(AudioReadError, match="no such file"):
        read_audio(tmp_path / "missing.wav")


# -- requests, addresses, OSC ---------------------------------------------------------------------


def test_request_becomes_generate_arguments():
    r = GenerateRequest("dusty boom-bap", bpm=92.0, key="F#", mode="minor", meter="3/4", bars=8,
                        seed=3, variations=2, steps=8, extra=(("lufs", "-16"),))
    assert r.to_osc_args() == ["dusty boom-bap", "bpm=92", "key=F#", "mode=minor", "meter=3/4",
                               "bars=8", "seed=3", "variations=2", "steps=8", "lufs=-16"]
    assert r.check().bpm == 92.0
    v = r.varied(77)
    assert v.seed == 77 and v.variations == 1 and v.prompt == r.prompt


def test_a_loop_request_asks_the_daemon_for_a_periodic_loop():
    """The form's Loop box: loop=1 goes to the daemon (which samples the loop periodic) and the
    daemon's own validation sees it; off, nothing is sent."""
    r = GenerateRequest("house loop", bpm=124.0, bars=4, loop=True)
    assert r.to_osc_args(tag="t1") == ["house loop", "bpm=124", "bars=4", "loop=1", "tag=t1"]
    assert r.check().bars == 4
    assert "loop=1" not in GenerateRequest("house loop").to_osc_args()


@pytest.mark.parametrize(("req", "why"), [
    (GenerateRequest("   "), "type a prompt"),
    (GenerateRequest("pad", bpm=40.0, bars=64), "bars at 40 bpm"),
    (GenerateRequest("pad", bars=4, seconds=8.0), "bars or seconds"),
    (GenerateRequest("pad, 300 bpm"), "out of range"),
])
def test_bad_requests_say_why(req, why):
    with pytest.raises(RequestError, match=why):
        req.check()


def test_daemon_address_parsing():
    assert DaemonAddress.parse("127.0.0.1:9000") == DaemonAddress("127.0.0.1", 9000)
    assert DaemonAddress.parse("9001") == DaemonAddress("127.0.0.1", 9001)
    assert DaemonAddress.parse("localhost").port == 9797
    assert DaemonAddress.parse("").is_local
    with pytest.raises(ValueError, match="bad port"):
        DaemonAddress.parse("host:abc")
    with pytest.raises(ValueError, match="out of range"):
        DaemonAddress.parse("host:70000")


def test_osc_round_trip_and_garbage():
    msgs = decode(encode("/n2m/clip/ready", ["j1", "/tmp/a.wav", 48000, 92.0, 8]))
    assert msgs == [("/n2m/clip/ready", ["j1", "/tmp/a.wav", 48000, 92.0, 8])]
    assert decode(b"\x00garbage!") == []


# -- progress and ETA ------------------------------------------------------------------------------


def test_eta_is_the_jobs_own_rate_over_the_whole_job():
    whole = Job(GenerateRequest("z"))
    whole.on_progress("text", 0.0, now=10.0)
    whole.on_progress("generator", 0.25, now=13.0)  # fractions of the whole job: 3 s for a quarter
    assert seconds_left(whole, now=13.0) == pytest.approx(9.0)
    assert format_eta(8.0) == "~8 s left" and format_eta(75) == "~1:15 left" and format_eta(None) == ""
    whole.on_progress("queued", 0.0, now=20.0)  # a restarted daemon runs the job again
    whole.on_progress("generator", 0.5, now=24.0)
    assert whole.run_started == 20.0 and seconds_left(whole, now=24.0) == pytest.approx(4.0)


def test_daw_state_takes_what_the_daw_reports(caplog):
    from n2m.plugin.dawsync import DawState

    daw = DawState()
    assert daw.text() == "not reported" and not daw.known
    assert daw.update_from_message("/n2m/set/tempo", [96.0])
    assert daw.update_from_message("/n2m/set/meter", [3, 4])
    assert daw.update_from_message("/n2m/set/samplerate", [44100])
    assert daw.text() == "96 bpm · 3/4 · 44.1 kHz"
    assert not daw.update_from_message("/n2m/set/tempo", [96])  # nothing new
    assert not daw.update_from_message("/n2m/set/meter", ["fast"])
    assert "/n2m/set/meter: arguments ['fast'] are not numbers" in caplog.text
    assert daw.update_from_message("/n2m/set/tempo", [0])  # the DAW cleared its tempo
    assert daw.bpm is None and daw.text() == "3/4 · 44.1 kHz"


# -- drag copies and the clip model ------------------------------------------------------------------


def test_drag_mime_data_is_a_fresh_read_only_copy_each_time(qtbot, tmp_path):
    from n2m.plugin.cliplist import ClipModel

    src = write_pcm24(tmp_path / "clip.wav", tone(0.2, 48000), 48000)
    model = ClipModel()
    model.add(Clip(path=str(src), prompt="keys"))
    m1 = model.mimeData([model.index(0)])
    m2 = model.mimeData([model.index(0)])
    assert m1 is not None and m2 is not None
    assert "text/uri-list" in m1.formats()
    p1, p2 = Path(m1.urls()[0].toLocalFile()), Path(m2.urls()[0].toLocalFile())
    assert p1 != p2 and p1 != src and p1.parent == src.parent / "drags"
    assert p1.read_bytes() == src.read_bytes() == p2.read_bytes()
    assert not os.stat(p1).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert m1.text() == str(p1)
    src.unlink()  # the clip goes; the copy the DAW imported stays
    assert p1.exists()
    assert model.mimeData([model.index(0)]) is None
    assert "the clip file is gone" in model.last_drag_error


def test_sidecar_is_found_beside_the_clip(tmp_path):
    (tmp_path / "a.wav.json").write_text('{"prompt": "p", "seed": 5}')
    assert read_sidecar(tmp_path / "a.wav")["seed"] == 5
    assert read_sidecar(tmp_path / "none.wav") == {}


# -- the panel without a daemon ----------------------------------------------------------------------


@pytest.fixture
def offline_panel(qtbot, qsettings):
    """A panel pointed at a port where nothing listens, never starting a daemon."""
    from n2m.plugin.panel import Panel

    panel = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", 9), autostart=False)
    qtbot.addWidget(panel)
    panel.resize(320, 700)
    panel.show()
    yield panel
    panel.shutdown()


def test_invalid_controls_are_shown_inline_and_nothing_is_queued(qtbot, offline_panel):
    p = offline_panel
    qtbot.keyClicks(p.prompt, "slow ambient pad, 40 bpm, 64 bars")
    qtbot.keyClick(p.prompt, Qt.Key.Key_Return)
    assert "64 bars at 40 bpm" in p.error_text()
    assert p.jobs == []


def test_a_request_waits_while_no_daemon_answers_and_can_be_cancelled(qtbot, offline_panel):
    p = offline_panel
    qtbot.keyClicks(p.prompt, "dusty boom-bap, 88 bpm")
    job = p.generate()
    assert job is not None and job.state == "sending" and "waiting for the daemon" in job.message
    assert "no daemon at 127.0.0.1:9" in p.conn_label.full_text()
    qtbot.keyClick(p, Qt.Key.Key_Escape)
    assert job.state == "cancelled"
    assert p.prompt.history()[0] == "dusty boom-bap, 88 bpm"


def test_settings_history_and_form_are_remembered(qtbot, qsettings):
    from n2m.plugin.panel import Panel
    from n2m.plugin.settings import PanelSettings

    a = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", 9), autostart=False)
    qtbot.addWidget(a)
    a.apply_settings(PanelSettings(daemon="127.0.0.1:9", output_dir="/tmp/x", samplerate=96000,
                                   format="flac", loudness=-16.0, autostart=False))
    a.prompt.setText("warm rhodes, 3/4")
    a.key.setCurrentText("Eb")
    a.form.loop.setChecked(True)
    assert a.current_request().loop
    a.generate()
    a.shutdown()
    b = Panel(qsettings, autostart=False)
    qtbot.addWidget(b)
    assert b.settings.format == "flac" and b.settings.samplerate == 96000 and b.settings.loudness == -16.0
    assert b.key.currentText() == "Eb" and b.form.loop.isChecked()
    assert b.prompt.history() == ["warm rhodes, 3/4"]
    comp = b.prompt.completer()
    comp.setCompletionPrefix("rhodes")
    assert comp.currentCompletion() == "warm rhodes, 3/4"
    assert b.current_request().extra == (("samplerate", "96000"), ("format", "flac"), ("lufs", "-16"))
    b.shutdown()


def _clip_in(panel, tmp_path, name: str = "c.wav") -> Clip:
    path = write_pcm24(tmp_path / name, tone(0.3, 48000), 48000)
    (tmp_path / f"{name}.json").write_text('{"prompt": "keys", "seed": 9}')
    clip = Clip(path=str(path), prompt="keys", seed=9, bpm=90.0, bars=1, samplerate=48000, seconds=0.3)
    panel.model.add(clip)
    panel.view.setCurrentIndex(panel.model.index(0))
    return clip


def test_delete_moves_the_clip_and_sidecar_to_the_trash(qtbot, offline_panel, tmp_path):
    p = offline_panel
    clip = _clip_in(p, tmp_path)
    sent = []
    p.clips.send = lambda address, args: sent.append((address, args)) or True
    p.delete_selected()
    assert p.model.rowCount() == 0 and not Path(clip.path).exists()
    trash = tmp_path / "xdg-data" / "Trash" / "files"
    assert sorted(f.name for f in trash.iterdir()) == ["c.wav", "c.wav.json"]
    assert sent == [("/n2m/clip/delete", [clip.path])]  # forgotten in the daemon's library too


def test_reveal_opens_the_clip_folder(qtbot, offline_panel, tmp_path):
    p = offline_panel
    opened = []
    p.open_url = lambda url: opened.append(url.toLocalFile()) or True
    _clip_in(p, tmp_path)
    p.reveal()
    assert opened == [str(tmp_path)]
    p.open_url = lambda url: False
    p.reveal()
    assert f"the clip is in {tmp_path}" in p.error_text()


def test_library_clips_come_back_and_missing_files_are_dropped(qtbot, qsettings, tmp_path):
    """The clip list comes from the daemon's library (/n2m/clips) when the panel meets the daemon."""
    import json

    from n2m.plugin.panel import Panel

    a = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", 9), autostart=False)
    qtbot.addWidget(a)
    kept = _clip_in(a, tmp_path, "kept.wav")
    gone = _clip_in(a, tmp_path, "gone.wav")
    a.shutdown()
    Path(gone.path).unlink()
    library = [{"path": gone.path, "prompt": "keys", "seed": 9, "favourite": True, "created": 2.0},
               {"path": kept.path, "prompt": "keys", "seed": 9, "bpm": 90.0, "bars": 1, "created": 1.0}]
    b = Panel(qsettings, autostart=False)
    qtbot.addWidget(b)
    assert b.model.rowCount() == 0  # nothing is listed before the daemon answers
    b._on_message("/n2m/clips", [json.dumps(library)])
    assert [c.path for c in b.model.clips()] == [kept.path]
    assert b.model.clip(0).request.prompt == "keys"
    b.shutdown()


def test_compact_at_narrow_widths_in_both_themes(qtbot, offline_panel):
    from PyQt6.QtGui import QPalette
    from PyQt6.QtWidgets import QApplication

    from n2m.plugin.theme import apply_theme

    app = QApplication.instance()
    assert offline_panel.minimumSizeHint().width() <= 320
    try:
        assert apply_theme(app, "dark") is True
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 60
        assert apply_theme(app, "light") is False
        assert app.palette().color(QPalette.ColorRole.Window).lightness() > 200
    finally:
        apply_theme(app, "system")


def test_panel_command_line_errors(capsys):
    from n2m.plugin.app import main

    assert main(["--size", "wide"]) == 2
    assert "bad --size" in capsys.readouterr().err
    assert main(["--daemon", "host:notaport"]) == 2
    assert "bad port" in capsys.readouterr().err


def test_settings_dialog_checks_the_address_inline(qtbot):
    from n2m.plugin.settings import PanelSettings
    from n2m.plugin.widgets import SettingsDialog

    dlg = SettingsDialog(PanelSettings())
    qtbot.addWidget(dlg)
    dlg.daemon.setText("127.0.0.1:notaport")
    dlg._accept()
    assert "bad port" in dlg.error.text() and dlg.result() == 0
    dlg.daemon.setText("127.0.0.1:9900")
    dlg.format.setCurrentIndex(dlg.format.findData("wav32f"))
    dlg.loudness.setValue(-18.0)
    dlg._accept()
    s = dlg.result_settings()
    assert dlg.result() == 1 and (s.daemon, s.format, s.loudness) == ("127.0.0.1:9900", "wav32f", -18.0)


def test_shutdown_releases_the_player_and_a_second_call_is_a_no_op(qtbot, qsettings, tmp_path):
    """Tried: shutdown while a preview plays, then the closeEvent's second shutdown; afterwards no
    media-player signal can reach the panel and the saved form is not written again."""
    from n2m.plugin.panel import Panel

    p = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", 9), autostart=False)
    qtbot.addWidget(p)
    wav = write_pcm24(tmp_path / "tone.wav", tone(2.0), 48000)
    p.player.play(str(wav))
    assert p.player._player is not None
    p.shutdown()
    assert p.player._player is None and not p.player.is_playing()
    assert p.store.form()["key"] == "auto"  # the panel's form was saved
    written_elsewhere = {"key": "Eb", "note": "saved by another panel"}
    p.store.save_form(written_elsewhere)
    p.close()  # closeEvent -> shutdown again: nothing happens, so the form is not overwritten
    assert p.store.form() == written_elsewhere
    p.player.play(str(wav))  # the player can still be used again: a fresh backend is made
    assert p.player._player is not None
    p.player.close()
