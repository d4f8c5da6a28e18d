"""The clip library on a real SQLite file: records, search, favourites, export, crash recovery, CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from n2m.bridge.clipfile import TMP_PREFIX
from n2m.bridge.library import Library, main


def add(lib: Library, d: Path, name: str, prompt: str, job: str = "j1") -> int:
    audio = d / f"{name}.wav"
    audio.write_bytes(b"RIFF....WAVE")
    side = d / f"{name}.wav.json"
    side.write_text(json.dumps({"prompt": prompt}))
    return lib.add_clip(job_id=job, idx=0, path=str(audio), sidecar=str(side), prompt=prompt,
                        controls={"bpm": 92.0, "key": "F#", "mode": "minor"}, seed=3, model="m1",
                        samplerate=48000, bpm=92.0, bars=8, duration=20.87, format="wav24")


def test_records_search_favourite_and_export(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    with Library(tmp_path / "lib.sqlite", clips) as lib:
        assert lib._query("PRAGMA journal_mode")[0][0] == "wal"
        lib.add_job("j1", "dusty boom-bap", {"bpm": 92.0}, 3, "m1")
        a = add(lib, clips, "a", "dusty boom-bap beat with rhodes")
        b = add(lib, clips, "b", "bright house chords 100% wet")
        assert [r.id for r in lib.clips()] == [b, a]
        assert [r.id for r in lib.search("BOOM rhodes")] == [a]
        assert [r.id for r in lib.search("100%")] == [b]  # LIKE wildcards are escaped
        assert [r.id for r in lib.search("f#")] == [b, a]  # controls are searchable too
        assert lib.search("nothing-like-this") == []
        assert lib.set_favourite(a) and lib.clip(a).favourite
        assert not lib.set_favourite(9999)
        dest = tmp_path / "export"
        dest.mkdir()
        out = lib.export(a, dest)
        assert out.read_bytes() == (clips / "a.wav").read_bytes() and (dest / "a.wav.json").exists()
        with pytest.raises(FileExistsError):  # export never overwrites
            lib.export(a, dest)
        with pytest.raises(KeyError):
            lib.export(424242, dest)


def test_recover_after_a_crash(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    with Library(tmp_path / "lib.sqlite", clips) as lib:
        lib.add_job("run", "p", {}, 1, "m")
        lib.set_job_state("run", "running")
        lib.add_job("wait", "p", {}, 2, "m")
        lib.add_job("ok", "p", {}, 3, "m", state="finished")
        add(lib, clips, "known", "known clip", "ok")
    # what a kill can leave: a temporary file, a complete clip whose row was never written, and
    # audio whose sidecar never landed
    (clips / f"{TMP_PREFIX}123-456.wav").write_bytes(b"partial")
    (clips / "lost.wav").write_bytes(b"RIFF")
    (clips / "lost.wav.json").write_text(json.dumps({"prompt": "lost one", "seed": 5, "model_id": "m",
                                                     "sample_rate": 48000, "duration": 2.0, "job_id": "run"}))
    (clips / "nosidecar.wav").write_bytes(b"RIFF")
    with Library(tmp_path / "lib.sqlite", clips) as lib:
        rep = lib.recover()
        print(rep)
        assert (rep.failed_jobs, rep.removed_temp_files, rep.imported_clips, rep.removed_orphans) == (2, 1, 1, 1)
        assert {j["id"]: j["state"] for j in lib.jobs()} == {"run": "failed", "wait": "failed", "ok": "finished"}
        assert "interrupted" in lib.job("run")["error"]
        paths = {Path(r.path).name for r in lib.clips()}
        assert paths == {"known.wav", "lost.wav"}
        assert sorted(p.name for p in clips.iterdir()) == ["known.wav", "known.wav.json", "lost.wav", "lost.wav.json"]
        assert lib.recover().failed_jobs == 0  # idempotent


def test_no_partial_rows_a_bad_insert_leaves_nothing(tmp_path: Path) -> None:
    with Library(tmp_path / "lib.sqlite") as lib:
        lib.add_job("j", "p", {}, 1, "m")
        with pytest.raises(sqlite3.IntegrityError):
            lib.add_job("j", "p", {}, 1, "m")  # duplicate id
        with pytest.raises(ValueError):
            lib.set_job_state("j", "exploded")
        assert len(lib.jobs()) == 1 and lib.job("j")["state"] == "queued"


def test_cli_list_search_export_favourite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    db = tmp_path / "lib.sqlite"
    with Library(db, clips) as lib:
        cid = add(lib, clips, "x", "lofi piano in F# minor")
    assert main(["--library", str(db), "list"]) == 0
    assert "lofi piano" in capsys.readouterr().out
    assert main(["--library", str(db), "--json", "search", "piano"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == cid
    assert main(["--library", str(db), "favourite", str(cid)]) == 0
    with Library(db) as lib:
        assert lib.clip(cid).favourite
    assert main(["--library", str(db), "favourite", "999"]) == 1
    assert main(["--library", str(db), "export", str(cid), str(tmp_path / "out.wav")]) == 0
    assert (tmp_path / "out.wav").exists()
    assert main(["--library", str(db), "export", str(cid), str(tmp_path / "out.wav")]) == 1  # no overwrite
    assert "never overwrites" in capsys.readouterr().err
    assert main(["--library", str(tmp_path / "missing.sqlite"), "list"]) == 1


def test_recover_queues_unfinished_jobs_with_a_stored_request_again(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    req = {"version": 1, "prompt": "p"}
    with Library(tmp_path / "lib.sqlite", clips) as lib:
        lib.add_job("waiting", "p", {}, 1, "m", request=req)
        lib.add_job("running", "p", {}, 2, "m", request=req)
        lib.set_job_state("running", "running")
        lib.add_job("worn", "p", {}, 3, "m", request=req)
        lib.set_job_state("worn", "running")
        lib._tx("UPDATE jobs SET interruptions=2 WHERE id='worn'")
        lib.add_job("old", "p", {}, 4, "m")  # no stored request: cannot be run again
        lib.set_job_state("old", "running")
    with Library(tmp_path / "lib.sqlite", clips) as lib:
        rep = lib.recover()
        assert [r["id"] for r in rep.requeued] == ["waiting", "running"] and rep.failed_jobs == 2
        assert json.loads(rep.requeued[0]["request"]) == req
        got = {j["id"]: (j["state"], j["interruptions"]) for j in lib.jobs()}
        assert got == {"waiting": ("queued", 0), "running": ("queued", 1), "worn": ("failed", 3), "old": ("failed", 1)}
        assert "interrupted 3 times" in lib.job("worn")["error"]
        assert "interrupted" in lib.job("old")["error"]


def test_a_job_adopts_its_own_files_in_a_subfolder(tmp_path: Path) -> None:
    """After a kill: a complete take of job j7 (sidecar landed), a take whose sidecar never landed,
    and another job's file, all in a request's subfolder."""
    sub = tmp_path / "clips" / "takes"
    sub.mkdir(parents=True)
    (sub / "x-s5-j7.wav").write_bytes(b"RIFF")
    (sub / "x-s5-j7.wav.json").write_text(json.dumps({"job_id": "j7", "index": 0, "prompt": "x", "seed": 5,
                                                      "model_id": "m", "sample_rate": 48000, "duration": 2.0}))
    (sub / "x-s6-j7-v1.wav").write_bytes(b"RIFF")
    (sub / "mine-s1-other.wav").write_bytes(b"RIFF")
    with Library(tmp_path / "lib.sqlite", tmp_path / "clips") as lib:
        assert lib.adopt_job_files("j7", sub) == (1, 1)
        assert [r.idx for r in lib.job_clips("j7")] == [0]
        assert sorted(p.name for p in sub.iterdir()) == ["mine-s1-other.wav", "x-s5-j7.wav", "x-s5-j7.wav.json"]
        assert lib.adopt_job_files("j7", sub) == (0, 0)  # idempotent


def test_an_edit_is_recorded_with_its_source_and_an_old_library_takes_the_column(tmp_path: Path) -> None:
    """Inputs: a library file made by the schema before edits (no `edit` column) holding one clip,
    then an extend's sidecar (as bridge.edit.write_edit writes it) imported into it, and an AIFF
    edit left without its row, found by recovery."""
    clips = tmp_path / "clips"
    clips.mkdir()
    db = sqlite3.connect(tmp_path / "lib.sqlite")
    db.executescript("CREATE TABLE clips (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT, idx INTEGER NOT NULL "
                     "DEFAULT 0, path TEXT NOT NULL UNIQUE, sidecar TEXT NOT NULL, prompt TEXT NOT NULL, controls TEXT "
                     "NOT NULL, seed INTEGER, model TEXT NOT NULL, samplerate INTEGER NOT NULL, bpm REAL, bars INTEGER,"
                     " duration REAL NOT NULL, format TEXT NOT NULL, favourite INTEGER NOT NULL DEFAULT 0, created REAL"
                     " NOT NULL);"
                     "INSERT INTO clips (path, sidecar, prompt, controls, model, samplerate, duration, format, created)"
                     " VALUES ('/x/old.wav', '/x/old.wav.json', 'old', '{}', 'm', 48000, 2.0, 'wav24', 1.0);")
    db.close()
    meta = {"edit": "extend", "bars": 2, "prompt": "lo-fi", "bpm": 80.0, "seed": 5, "model_id": "m",
            "controls": {"bpm": 80.0}, "index": 0, "job_id": "e1", "source": "/x/old.wav", "source_id": 1,
            "sample_rate": 44100, "duration": 12.0, "format": "flac", "created": 2.0, "length_bars": 4}
    (clips / "e.flac").write_bytes(b"fLaC")
    (clips / "e.flac.json").write_text(json.dumps(meta))
    (clips / "v.aiff").write_bytes(b"FORM")
    (clips / "v.aiff.json").write_text(json.dumps({**meta, "edit": "vary", "strength": 0.3, "job_id": "e2"}))
    with Library(tmp_path / "lib.sqlite", clips) as lib:
        assert lib.clip(1).edit is None and lib.clip(1).prompt == "old"
        cid = lib.add_from_sidecar(clips / "e.flac", clips / "e.flac.json", meta)
        rec = lib.clip(cid)
        print(rec.as_dict())
        assert rec.edit == {"kind": "extend", "bars": 2, "source": "/x/old.wav", "source_id": 1}
        assert (rec.bars, rec.samplerate, rec.format, rec.seed) == (4, 44100, "flac", 5)  # bars of the result
        assert lib.recover().imported_clips == 1
        (varied,) = [r for r in lib.clips() if r.path.endswith("v.aiff")]
        assert varied.edit["kind"] == "vary" and varied.edit["strength"] == 0.3
