"""The clip library: every job and every clip the daemon made, in SQLite (WAL).

Crash safety: a clip row is written in one transaction only after its audio and sidecar files are
complete and renamed into place; temporary files carry a prefix that nothing lists. A job keeps
the whole request it was accepted with (JSON), so a daemon that died can run it again: on start,
`recover()` puts jobs left queued or running back in the queue (a running one counts an
interruption; `MAX_INTERRUPTIONS` fail it), fails those without a stored request, deletes
temporary files, imports complete clips whose row was lost (from their sidecar) and deletes audio
without a sidecar. A clip made by an edit (vary, extend, inpaint) records the edit and its source.

    n2m clips list [--limit N]
    n2m clips search QUERY
    n2m clips export ID DEST
    n2m clips favourite ID [--off]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2m.bridge.clipfile import TMP_PREFIX
from n2m.bridge.request import EDITS

AUDIO_SUFFIXES = (".wav", ".flac", ".aiff")  # what the daemon writes (.aiff: edits of AIFF)
JOB_STATES = ("queued", "running", "finished", "failed", "cancelled")
MAX_INTERRUPTIONS = 3  # a job interrupted this often while running fails instead of running again

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    controls TEXT NOT NULL,
    seed INTEGER,
    model TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued','running','finished','failed','cancelled')),
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    request TEXT,
    interruptions INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT,
    idx INTEGER NOT NULL DEFAULT 0,
    path TEXT NOT NULL UNIQUE,
    sidecar TEXT NOT NULL,
    prompt TEXT NOT NULL,
    controls TEXT NOT NULL,
    seed INTEGER,
    model TEXT NOT NULL,
    samplerate INTEGER NOT NULL,
    bpm REAL,
    bars INTEGER,
    duration REAL NOT NULL,
    format TEXT NOT NULL,
    favourite INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    edit TEXT
);
CREATE INDEX IF NOT EXISTS clips_created ON clips(created);
"""


def data_home() -> Path:
    """$N2M_HOME, else $XDG_DATA_HOME/n2m, else ~/.local/share/n2m."""
    if os.environ.get("N2M_HOME"):
        return Path(os.environ["N2M_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "n2m"


def default_library_path() -> Path:
    return data_home() / "library.sqlite"


def default_clips_dir() -> Path:
    return data_home() / "clips"


@dataclass(frozen=True)
class ClipRecord:
    id: int
    job_id: str | None
    idx: int
    path: str
    sidecar: str
    prompt: str
    controls: dict[str, Any]
    seed: int | None
    model: str
    samplerate: int
    bpm: float | None
    bars: int | None
    duration: float
    format: str
    favourite: bool
    created: float
    edit: dict[str, Any] | None = None  # {"kind", "source", "source_id", and "bars" or "strength"}; None: generated

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RecoveryReport:
    failed_jobs: int
    removed_temp_files: int
    imported_clips: int
    removed_orphans: int
    requeued: tuple[dict[str, Any], ...] = ()  # job rows to run again, oldest first


class Library:
    """One SQLite file in WAL mode; safe to share between the daemon's threads."""

    def __init__(self, path: str | os.PathLike[str], clips_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clips_dir = Path(clips_dir) if clips_dir is not None else None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            for col, decl in (("request", "TEXT"), ("interruptions", "INTEGER NOT NULL DEFAULT 0")):
                if col not in cols:  # a library written before jobs kept their request
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {col} {decl}")
            if "edit" not in {r[1] for r in self._db.execute("PRAGMA table_info(clips)")}:
                self._db.execute("ALTER TABLE clips ADD COLUMN edit TEXT")  # a library from before edits

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(sql, params)
                self._db.execute("COMMIT")
                return cur
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- jobs ------------------------------------------------------------------------------------
    def add_job(self, job_id: str, prompt: str, controls: dict[str, Any], seed: int | None,
                model: str, state: str = "queued", request: dict[str, Any] | None = None) -> None:
        """`request`: everything needed to run the job again after a crash (JSON-able)."""
        now = time.time()
        self._tx("INSERT INTO jobs (id, prompt, controls, seed, model, state, created, updated, request) "
                 "VALUES (?,?,?,?,?,?,?,?,?)",
                 (job_id, prompt, json.dumps(controls, sort_keys=True), seed, model, state, now, now,
                  None if request is None else json.dumps(request, sort_keys=True)))

    def set_job_state(self, job_id: str, state: str, error: str | None = None) -> None:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        self._tx("UPDATE jobs SET state=?, error=?, updated=? WHERE id=?",
                 (state, error, time.time(), job_id))

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM jobs WHERE id=?", (job_id,))
        return dict(rows[0]) if rows else None

    def jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        if state is None:
            return [dict(r) for r in self._query("SELECT * FROM jobs ORDER BY created")]
        return [dict(r) for r in self._query("SELECT * FROM jobs WHERE state=? ORDER BY created", (state,))]

    # -- clips -----------------------------------------------------------------------------------
    def add_clip(self, *, job_id: str | None, idx: int, path: str, sidecar: str, prompt: str,
                 controls: dict[str, Any], seed: int | None, model: str, samplerate: int,
                 bpm: float | None, bars: int | None, duration: float, format: str,
                 created: float | None = None, edit: dict[str, Any] | None = None) -> int:
        cur = self._tx(
            "INSERT INTO clips (job_id, idx, path, sidecar, prompt, controls, seed, model, samplerate,"
            " bpm, bars, duration, format, created, edit) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (job_id, idx, str(path), str(sidecar), prompt, json.dumps(controls, sort_keys=True), seed,
             model, samplerate, bpm, bars, duration, format, created or time.time(),
             None if edit is None else json.dumps(edit, sort_keys=True)))
        return int(cur.lastrowid)

    @staticmethod
    def _clip(row: sqlite3.Row) -> ClipRecord:
        d = dict(row)
        d["controls"] = json.loads(d["controls"])
        d["favourite"] = bool(d["favourite"])
        d["edit"] = json.loads(d["edit"]) if d.get("edit") else None
        return ClipRecord(**d)

    def clip(self, clip_id: int) -> ClipRecord | None:
        rows = self._query("SELECT * FROM clips WHERE id=?", (clip_id,))
        return self._clip(rows[0]) if rows else None

    def clips(self, limit: int = 50) -> list[ClipRecord]:
        return [self._clip(r) for r in
                self._query("SELECT * FROM clips ORDER BY created DESC, id DESC LIMIT ?", (limit,))]

    def search(self, query: str, limit: int = 50) -> list[ClipRecord]:
        """Clips whose prompt or controls contain every word of the query (case-insensitive)."""
        words = [w for w in query.lower().split() if w]
        sql = "SELECT * FROM clips"
        params: list[Any] = []
        if words:
            sql += " WHERE " + " AND ".join(
                "(lower(prompt) LIKE ? ESCAPE '\\' OR lower(controls) LIKE ? ESCAPE '\\')" for _ in words)
            for w in words:
                pat = "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                params += [pat, pat]
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        return [self._clip(r) for r in self._query(sql, (*params, limit))]

    def set_favourite(self, clip_id: int, on: bool = True) -> bool:
        return self._tx("UPDATE clips SET favourite=? WHERE id=?", (int(on), clip_id)).rowcount == 1

    def clip_by_path(self, path: str | os.PathLike[str]) -> ClipRecord | None:
        rows = self._query("SELECT * FROM clips WHERE path=?", (str(path),))
        return self._clip(rows[0]) if rows else None

    def forget(self, clip_id: int) -> bool:
        """Remove a clip's row (its files are the caller's: the panel moves them to the Trash)."""
        return self._tx("DELETE FROM clips WHERE id=?", (clip_id,)).rowcount == 1

    def export(self, clip_id: int, dest: str | os.PathLike[str]) -> Path:
        """Copy a clip (and its sidecar) to dest (a folder or a new file name); never overwrites."""
        rec = self.clip(clip_id)
        if rec is None:
            raise KeyError(f"no clip with id {clip_id}")
        src = Path(rec.path)
        if not src.is_file():
            raise FileNotFoundError(f"clip {clip_id}'s file is missing: {src}")
        dest = Path(dest)
        target = dest / src.name if dest.is_dir() else dest
        if target.exists():
            raise FileExistsError(f"{target} exists; n2m never overwrites")
        tmp = target.with_name(TMP_PREFIX + target.name)
        shutil.copyfile(src, tmp)
        os.link(tmp, target)  # fails rather than overwrite a file that appeared meanwhile
        tmp.unlink()
        side = Path(rec.sidecar)
        side_target = target.with_name(target.name + ".json")
        if side.is_file() and not side_target.exists():
            shutil.copyfile(side, side_target)
        return target

    # -- crash recovery --------------------------------------------------------------------------
    def job_clips(self, job_id: str) -> list[ClipRecord]:
        """The clips a job has in the library, by variation index."""
        return [self._clip(r) for r in self._query("SELECT * FROM clips WHERE job_id=? ORDER BY idx", (job_id,))]

    def _requeue_interrupted(self, reason: str) -> tuple[int, tuple[dict[str, Any], ...]]:
        """Jobs left queued or running go back to 'queued' (a running one counts an interruption);
        those without a stored request, or interrupted MAX_INTERRUPTIONS times, fail."""
        now = time.time()
        failed = 0
        for row in self._query("SELECT * FROM jobs WHERE state IN ('queued','running') ORDER BY created"):
            n = int(row["interruptions"]) + (row["state"] == "running")
            if row["request"] is None:
                error = reason
            elif n >= MAX_INTERRUPTIONS:
                error = (f"interrupted {n} times: the daemon stopped while the job ran each time, "
                         "so it is not run again")
            else:
                self._tx("UPDATE jobs SET state='queued', interruptions=?, updated=? WHERE id=?",
                         (n, now, row["id"]))
                continue
            self._tx("UPDATE jobs SET state='failed', error=?, interruptions=?, updated=? WHERE id=?",
                     (error, n, now, row["id"]))
            failed += 1
        requeued = tuple(dict(r) for r in self._query(
            "SELECT * FROM jobs WHERE state='queued' AND request IS NOT NULL ORDER BY created"))
        return failed, requeued

    def recover(self, reason: str = "interrupted: the daemon stopped before the job finished") -> RecoveryReport:
        failed, requeued = self._requeue_interrupted(reason)
        removed_tmp = imported = orphans = 0
        if self.clips_dir is not None and self.clips_dir.is_dir():
            known = {r["path"] for r in self._query("SELECT path FROM clips")}
            for p in sorted(self.clips_dir.iterdir()):
                if p.name.startswith(TMP_PREFIX):
                    p.unlink(missing_ok=True)
                    removed_tmp += 1
            for p in sorted(self.clips_dir.iterdir()):
                if p.suffix not in AUDIO_SUFFIXES or str(p) in known:
                    continue
                side = p.with_name(p.name + ".json")
                meta = _read_sidecar(side)
                if meta is None:
                    p.unlink(missing_ok=True)  # audio whose sidecar never landed
                    orphans += 1
                    continue
                self.add_from_sidecar(p, side, meta)
                imported += 1
        return RecoveryReport(failed, removed_tmp, imported, orphans, requeued)

    def add_from_sidecar(self, audio: Path, sidecar: Path, meta: dict[str, Any]) -> int:
        """Record a complete clip from its sidecar (a generated clip's or an edit's); returns its id."""
        edit = _edit_of(meta)
        return self.add_clip(job_id=meta.get("job_id"), idx=int(meta.get("index", 0)), path=str(audio),
                             sidecar=str(sidecar), prompt=str(meta.get("prompt", "")),
                             controls=meta.get("controls") or {}, seed=meta.get("seed"),
                             model=str(meta.get("model_id", "")),
                             samplerate=int(meta.get("sample_rate", 0)), bpm=meta.get("bpm"),
                             bars=meta.get("length_bars") if edit else meta.get("bars"),
                             duration=float(meta.get("duration", 0.0)),
                             format=str(meta.get("format", audio.suffix[1:])), created=meta.get("created"),
                             edit=edit)

    def adopt_job_files(self, job_id: str, folder: str | os.PathLike[str]) -> tuple[int, int]:
        """A job's files in `folder` (its id is in their names) that the library lacks: complete
        clips are recorded, audio whose sidecar never landed is deleted. (imported, removed)."""
        folder = Path(folder)
        if not folder.is_dir():
            return 0, 0
        known = {r["path"] for r in self._query("SELECT path FROM clips WHERE job_id=?", (job_id,))}
        imported = removed = 0
        for p in sorted(folder.iterdir()):
            if p.suffix not in AUDIO_SUFFIXES or f"-{job_id}" not in p.stem or str(p) in known:
                continue
            side = p.with_name(p.name + ".json")
            meta = _read_sidecar(side)
            if meta is None or meta.get("job_id") != job_id:
                p.unlink(missing_ok=True)
                removed += 1
                continue
            self.add_from_sidecar(p, side, meta)
            imported += 1
        return imported, removed


def _edit_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The edit an edit's sidecar names (bridge.edit: "edit", its parameter, "source"), else None."""
    if meta.get("edit") not in EDITS:
        return None
    param = "strength" if meta["edit"] == "vary" else "bars"
    return {"kind": meta["edit"], "source": meta.get("source"), "source_id": meta.get("source_id"),
            param: meta.get(param)}


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _fmt(rec: ClipRecord) -> str:
    star = "*" if rec.favourite else " "
    bpm = f"{rec.bpm:g} bpm" if rec.bpm else "free"
    bars = f"{rec.bars} bars" if rec.bars else f"{rec.duration:.1f} s"
    return f"{rec.id:>5} {star} {time.strftime('%Y-%m-%d %H:%M', time.localtime(rec.created))}  {bpm:>9}  {bars:>8}  seed {rec.seed}  {rec.prompt!r}\n        {rec.path}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="n2m clips", description="List, search and export the clip library.")
    ap.add_argument("--library", default=None, help=f"library file (default {default_library_path()})")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = ap.add_subparsers(dest="cmd")
    p_list = sub.add_parser("list", help="newest clips first")
    p_list.add_argument("--limit", type=int, default=50)
    p_search = sub.add_parser("search", help="clips whose prompt or controls contain every word")
    p_search.add_argument("query")
    p_search.add_argument("--limit", type=int, default=50)
    p_export = sub.add_parser("export", help="copy a clip and its sidecar to DEST")
    p_export.add_argument("id", type=int)
    p_export.add_argument("dest")
    p_fav = sub.add_parser("favourite", help="mark a clip as a favourite (--off to unmark)")
    p_fav.add_argument("id", type=int)
    p_fav.add_argument("--off", action="store_true")
    args = ap.parse_args(argv)
    path = Path(args.library) if args.library else default_library_path()
    if not path.exists():
        print(f"n2m clips: no library at {path} yet (run `n2m serve` or `n2m generate` first)", file=sys.stderr)
        return 1
    with Library(path) as lib:
        cmd = args.cmd or "list"
        if cmd in {"list", "search"}:
            limit = getattr(args, "limit", 50)
            recs = lib.clips(limit) if cmd == "list" else lib.search(args.query, limit)
            if args.json:
                print(json.dumps([r.as_dict() for r in recs], indent=1))
            else:
                print("\n".join(_fmt(r) for r in recs) if recs else "(no clips)")
            return 0
        if cmd == "export":
            try:
                print(lib.export(args.id, args.dest))
            except (KeyError, OSError) as exc:
                print(f"n2m clips export: {exc}", file=sys.stderr)
                return 1
            return 0
        if cmd == "favourite":
            if not lib.set_favourite(args.id, not args.off):
                print(f"n2m clips favourite: no clip with id {args.id}", file=sys.stderr)
                return 1
            return 0
    return 2
