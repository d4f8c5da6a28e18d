"""A real Ardour 7 (Debian's, under Xvfb) receives an n2m clip through the shipped adapter.

Opt-in: `N2M_ARDOUR=1 .venv/bin/python -m pytest tests/bridge/test_ardour.py` (needs
`apt-get install ardour xvfb`). What it does, all under tmp_path with its own HOME and
XDG_CONFIG_HOME:

1. generates a clip with the real engine (the `tiny_model_dir` cascade) through the real
   pipeline (`process_clip`, `write_clip`): 2 bars at 120 bpm, 48 kHz, 24-bit WAV;
2. creates a session with one mono audio track with `ardour7-lua` (Ardour's own headless
   interpreter) and compiles `bridge/daw/ardour/n2m_import_clip.lua` there, as the Script Manager
   does, into action slot 1 (the `ui_scripts` file); turns the session's OSC surface on;
3. starts the Ardour GUI on the Dummy backend under Xvfb, waits for its OSC UDP port (3819, or
   the next free one Ardour picks) to be bound by the Ardour process;
4. `n2m.bridge.daw.Ardour(port=...).send(clip)`: the hand-off file plus OSC
   `/access_action "LuaAction/script-1"`; the script imports and saves the session;
5. reads the saved `.ardour` XML: a region on the track's playlist whose source is the clip's
   copy in `interchange/<session>/audiofiles/`, the length exact to the sample.

Ardour and Xvfb are always stopped (their process groups), whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.daw import SCRIPTS, Ardour

ARDOUR_GUI = Path("/usr/bin/ardour")
RATE = 48000
SUPERCLOCK = 282_240_000  # Ardour 7 superclock ticks per second
SESSION = "n2m-ardour"
TRACK = "n2m"
ACTION = SCRIPTS / "ardour" / "n2m_import_clip.lua"
WAIT_S = 90.0  # every wait is bounded by this


def _missing() -> str | None:
    if not ARDOUR_GUI.is_file():
        return f"{ARDOUR_GUI} is missing (apt-get install ardour)"
    if not shutil.which("ardour7-lua"):
        return "ardour7-lua is missing (Debian's ardour package ships it)"
    if not shutil.which("Xvfb"):
        return "Xvfb is missing (apt-get install xvfb)"
    return None


_MISSING = _missing()
pytestmark = [pytest.mark.ardour, pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


def _lua_string(s: str) -> str:
    """A Lua long-bracket string literal holding s verbatim."""
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[\n{s}]{eq}]"


# -- the clip ---------------------------------------------------------------------------------------
@pytest.fixture
def clip(tiny_model_dir: Path, tmp_path: Path) -> tuple[Path, int]:
    from n2m.bridge.clipfile import write_clip
    from n2m.bridge.controls import Controls, resolve
    from n2m.bridge.engine import Engine, Request
    from n2m.bridge.pipeline import PipelineOptions, process_clip

    prompt = "dusty boom bap drums"
    engine = Engine.load(tiny_model_dir, provider="cpu", threads=1)
    generated = engine.generate(Request(prompt, resolve(prompt, Controls(seconds=4.0)), seed=7))[0]
    processed = process_clip(generated, PipelineOptions(bpm=120.0, bars=2, sample_rate=RATE))
    files = write_clip(processed, tmp_path / "clips", job_id="ardour1")
    return files.audio, len(processed.audio)


# -- Ardour set-up ----------------------------------------------------------------------------------
def _make_session(work: Path, env: dict[str, str]) -> tuple[Path, str]:
    """Session + one mono audio track via ardour7-lua; returns (session dir, action-slot state)."""
    state = work / "action_state.lua"
    script = work / "make_session.lua"
    script.write_text(f"""
local backend = AudioEngine:set_backend ("None (Dummy)", "", "")
assert (backend, "no Dummy backend")
backend:set_device_name ("Silence")
backend:set_sample_rate ({RATE})
assert (AudioEngine:start (false) == 0, "engine did not start")
local s = create_session ({_lua_string(str(work / SESSION))}, "{SESSION}", {RATE})
assert (s, "create_session failed")
local tl = s:new_audio_track (1, 2, nil, 1, "{TRACK}", ARDOUR.PresentationInfo.max_order,
                              ARDOUR.TrackMode.Normal, true)
assert (tl:size () == 1, "no track made")
s:save_state ("", false, false, false, false, false)
close_session ()

-- what the Script Manager stores for action slot 1: name, source, factory bytecode, args
ardour = function (_) end
local src = assert (io.open ({_lua_string(str(ACTION))}, "rb")):read ("*a")
load (src) ()
local out = assert (io.open ({_lua_string(str(state))}, "wb"))
out:write ("scripts = {{}} scripts[1] = {{}} ",
           "scripts[1]['n'] = ", string.format ("%q", "n2m: import clip"), " ",
           "scripts[1]['s'] = ", string.format ("%q", src), " ",
           "scripts[1]['f'] = ", string.format ("%q", string.dump (factory, true)), " ",
           "scripts[1]['a'] = {{}} ")
out:close ()
print ("n2m-session-ok")
""")
    r = subprocess.run(["ardour7-lua", str(script)], env=env, cwd=work, capture_output=True, text=True,
                       timeout=WAIT_S)
    assert "n2m-session-ok" in r.stdout, f"ardour7-lua failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return work / SESSION, state.read_text(encoding="latin-1")


def _enable_osc(session_file: Path) -> None:
    """The session's own ControlProtocols entry wins over the user config: turn OSC on there."""
    tree = ET.parse(session_file)
    protos = [p for p in tree.getroot().iter("Protocol") if p.get("name", "").startswith("Open Sound Control")]
    assert protos, "no OSC protocol entry in the new session"
    for p in protos:
        p.set("active", "1")
    tree.write(session_file, encoding="UTF-8", xml_declaration=True)


def _write_config(cfg: Path, action_state: bytes) -> None:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / ".a7").touch()  # skips the first-run wizard
    (cfg / "instant.xml").write_text("<instant><no-memory-warning/></instant>\n")
    root = ET.Element("Ardour")
    conf = ET.SubElement(root, "Config")
    for name, value in (("try-autostart-engine", "1"), ("hide-dummy-backend", "0")):
        ET.SubElement(conf, "Option", {"name": name, "value": value})
    states = ET.SubElement(ET.SubElement(ET.SubElement(root, "Extra"), "AudioMIDISetup"), "EngineStates")
    ET.SubElement(states, "State", {
        "backend": "None (Dummy)", "driver": "Normal Speed", "device": "Silence",
        "input-device": "Silence", "output-device": "Silence", "sample-rate": str(RATE),
        "buffer-size": "1024", "n-periods": "0", "input-latency": "0", "output-latency": "0",
        "active": "1", "use-buffered-io": "0", "midi-option": "No MIDI I/O"})
    ET.ElementTree(root).write(cfg / "config", encoding="UTF-8", xml_declaration=True)
    ui = ET.Element("UIScripts")
    ET.SubElement(ui, "ActionScript", {"lua": "Lua 5.3"}).text = base64.b64encode(action_state).decode()
    ET.SubElement(ui, "ActionHooks")
    ET.ElementTree(ui).write(cfg / "ui_scripts", encoding="UTF-8", xml_declaration=True)


def _start_xvfb(log: Path) -> tuple[subprocess.Popen, str]:
    rfd, wfd = os.pipe()
    try:
        proc = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                pass_fds=(wfd,), stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        os.close(wfd)
    try:
        with os.fdopen(rfd, "rb") as r:
            number = r.readline().strip().decode()  # Xvfb writes it once it is ready (EOF if it died)
    except Exception:
        _stop(proc)
        raise
    if not number:
        _stop(proc)
        pytest.fail(f"Xvfb did not start:\n{log.read_text(errors='replace')[-2000:]}")
    return proc, f":{number}"


def _stop(proc: subprocess.Popen | None, grace: float = 5.0) -> None:
    """SIGTERM then SIGKILL to the process group we started (start_new_session)."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # also whatever Ardour forked
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is still in the group."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getpgid(int(d.name)) == pgid and (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
            except (OSError, IndexError):
                continue
    return False


def _windows(env: dict[str, str]) -> str:
    if not shutil.which("xwininfo"):
        return "(xwininfo not installed)"
    r = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, timeout=10)
    return "\n".join(line for line in r.stdout.splitlines() if '"' in line)


def _editor_open(env: dict[str, str]) -> bool:
    """The editor window carries the session's name once the session (and its action scripts) loaded."""
    if not shutil.which("xwininfo"):
        return True  # x11-utils missing: the OSC port alone has to do
    return f'"{SESSION} - Ardour"' in _windows(env)


def _wait(what: str, check, proc: subprocess.Popen, log: Path, env: dict[str, str], timeout: float = WAIT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"Ardour exited ({proc.returncode}) while waiting for {what}:\n"
                        f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; windows:\n{_windows(env)}\n"
                f"log:\n{log.read_text(errors='replace')[-4000:]}")


# -- reading the saved session ----------------------------------------------------------------------
def _imported_region(session_file: Path, track: str) -> dict | None:
    """The first region on `track`'s playlist with its source, or None (also while being written)."""
    try:
        root = ET.parse(session_file).getroot()
    except (ET.ParseError, OSError):
        return None
    route = next((r for r in root.iter("Route") if r.get("name") == track), None)
    if route is None:
        return None
    sources = {s.get("id"): s for s in root.iter("Source")}
    for playlist in root.iter("Playlist"):
        if playlist.get("orig-track-id") != route.get("id"):
            continue
        for region in playlist.iter("Region"):
            src = sources.get(region.get("source-0"))
            if src is not None:
                return {"region": dict(region.attrib), "source": dict(src.attrib), "playlist": playlist.get("name")}
    return None


def _superclock(value: str) -> int:
    """Ardour 7 time strings: 'a<superclock>' (audio time); a length is 'a<len>@a<position>'."""
    value = value.split("@", 1)[0]
    if value[:1] != "a":
        raise AssertionError(f"not an audio-time value: {value!r}")
    return int(value[1:])


def _osc_port(pgid: int) -> int | None:
    """The UDP port in Ardour's OSC range (3819 + up to 19) that a process of the group has bound."""
    inodes: set[str] = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getpgid(int(d.name)) != pgid:
                continue
            for fd in (d / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    ports = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                port = int(f[1].rsplit(":", 1)[1], 16)
                if f[9] in inodes and 3819 <= port < 3839:
                    ports.append(port)
    return min(ports) if ports else None


# -- the test ---------------------------------------------------------------------------------------
def test_ardour_imports_a_generated_clip_on_a_track(clip: tuple[Path, int], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    clip_path, clip_samples = clip
    home = tmp_path / "home"
    cfg_home = home / ".config"
    cfg = cfg_home / "ardour7"
    handoff = tmp_path / "handoff" / "next_clip.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARDOUR", "JACK", "DISPLAY", "WAYLAND"))}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(cfg_home), "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"), "LANG": "C.UTF-8", "N2M_DAW_HANDOFF": str(handoff)}
    home.mkdir()
    session_dir, action_state = _make_session(tmp_path, env)
    session_file = session_dir / f"{SESSION}.ardour"
    _enable_osc(session_file)
    _write_config(cfg, action_state.encode("latin-1"))
    assert _imported_region(session_file, TRACK) is None  # the track starts empty

    xlog, alog = tmp_path / "xvfb.log", tmp_path / "ardour.log"
    xvfb = ardour = None
    try:
        xvfb, display = _start_xvfb(xlog)
        env["DISPLAY"] = display
        t0 = time.monotonic()
        ardour = subprocess.Popen([str(ARDOUR_GUI), "--no-splash", "--no-announcements", str(session_file)],
                                  env=env, cwd=tmp_path, stdout=alog.open("wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        port = _wait("Ardour's OSC surface (a UDP port from 3819)", lambda: _osc_port(ardour.pid), ardour, alog, env)
        _wait(f"the editor window for {SESSION}", lambda: _editor_open(env), ardour, alog, env)
        t_ready = time.monotonic()

        monkeypatch.setenv("N2M_DAW_HANDOFF", str(handoff))
        reply = Ardour(port=port).send(str(clip_path))
        assert "Ardour" in reply and handoff.read_text().strip() == str(clip_path.resolve())
        found = _wait("the imported region in the saved session",
                      lambda: _imported_region(session_file, TRACK), ardour, alog, env)
        t_done = time.monotonic()
    finally:
        _stop(ardour)
        _stop(xvfb)
    for proc in (ardour, xvfb):  # nothing of either process group is left
        end = time.monotonic() + 10
        while time.monotonic() < end and _group_alive(proc.pid):
            time.sleep(0.1)
        assert not _group_alive(proc.pid), f"process group {proc.pid} still has members"

    region, source = found["region"], found["source"]
    assert found["playlist"].startswith(TRACK)
    assert source.get("type") == "audio"
    copy = session_dir / "interchange" / SESSION / "audiofiles" / source["name"]
    assert copy.is_file(), f"{copy} missing; interchange has {sorted(p.name for p in session_dir.rglob('*.wav'))}"
    assert clip_path.stem in source["name"] or clip_path.stem in region.get("name", "")
    # the copy Ardour made holds the clip's samples, and the region spans all of them from the playhead (0)
    from pedalboard.io import AudioFile

    with AudioFile(str(copy)) as f, AudioFile(str(clip_path)) as g:
        assert f.samplerate == RATE and f.frames == clip_samples == g.frames
        a, b = f.read(f.frames), g.read(g.frames)
    assert np.max(np.abs(a - b)) < 1e-4
    assert _superclock(region["length"]) == clip_samples * SUPERCLOCK // RATE
    position = region["length"].split("@", 1)[1] if "@" in region["length"] else region.get("position", "a0")
    assert _superclock(position) == 0  # at the playhead, which a freshly opened session has at 0
    print(f"\nArdour: OSC up {t_ready - t0:.1f} s after launch; clip on the track and saved "
          f"{t_done - t_ready:.1f} s after the send ({t_done - t0:.1f} s from launch)")
