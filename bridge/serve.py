"""`n2m serve`: start the daemon (n2m.bridge.daemon) on a model, a clip folder and a library.

    n2m serve [--host H] [--port P] [--model NAME|DIR] [--allow-remote] [--queue N]
              [--library PATH] [--out DIR] [--grace S]

Folders are checked and the library recovered before the model loads: jobs a previous daemon
accepted and never finished are queued again. SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

from n2m.bridge import protocol as P
from n2m.bridge.daemon import BindRefused, Daemon, DaemonConfig, check_bind
from n2m.bridge.library import Library, default_clips_dir, default_library_path
from n2m.bridge.manifest import ModelError
from n2m.bridge.modelpath import resolve_model
from n2m.bridge.outdir import OutDirError, usable_dir
from n2m.bridge.pipeline import FORMATS, SAMPLE_RATES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="n2m serve", description="the OSC daemon that keeps the cascade loaded and turns requests into clips")
    ap.add_argument("--host", default=P.DEFAULT_HOST, help="address to bind (default loopback)")
    ap.add_argument("--port", type=int, default=P.DEFAULT_PORT, help="UDP and TCP port (0 = any free)")
    ap.add_argument("--model", default=None, help="model name under n2m/bridge/models, or a model folder")
    ap.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    ap.add_argument("--queue", type=int, default=P.DEFAULT_QUEUE, help="jobs that may wait (default 16)")
    ap.add_argument("--library", type=Path, default=None, help="clip library file")
    ap.add_argument("--out", type=Path, default=None, help="folder for clips")
    ap.add_argument("--samplerate", type=int, default=48000, choices=SAMPLE_RATES)
    ap.add_argument("--format", default="wav24", choices=sorted(FORMATS))
    ap.add_argument("--grace", type=float, default=30.0, help="seconds a running job may finish on shutdown")
    ap.add_argument("--provider", default="auto", help="ONNX Runtime provider (auto, cpu, cuda)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-tcp", action="store_true", help="serve UDP only")
    args = ap.parse_args(argv)
    try:
        check_bind(args.host, args.allow_remote)
    except BindRefused as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        return 2
    if args.queue < 1:
        print("n2m serve: --queue must be at least 1", file=sys.stderr)
        return 2
    config = DaemonConfig(
        host=args.host, port=args.port, allow_remote=args.allow_remote, queue_size=args.queue,
        library_path=args.library or default_library_path(), out_dir=args.out or default_clips_dir(),
        sample_rate=args.samplerate, format=args.format, shutdown_grace=args.grace, tcp=not args.no_tcp)
    try:
        usable_dir(config.out_dir, "--out")
        usable_dir(config.library_path.parent, "--library's folder")
        library = Library(config.library_path, config.out_dir)
    except OutDirError as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"n2m serve: cannot open the clip library {config.library_path}: {exc}", file=sys.stderr)
        return 2
    rep = library.recover()
    if rep.failed_jobs or rep.removed_temp_files or rep.imported_clips or rep.removed_orphans or rep.requeued:
        print(f"n2m serve: recovered the library: {len(rep.requeued)} unfinished job(s) queued again, "
              f"{rep.failed_jobs} job(s) marked failed, {rep.removed_temp_files} temporary file(s) removed, "
              f"{rep.imported_clips} clip(s) re-imported, {rep.removed_orphans} incomplete clip(s) removed",
              flush=True)
    from n2m.bridge.engine import Engine

    try:
        model_dir = resolve_model(args.model)
    except ModelError as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        library.close()
        return 2
    print(f"n2m serve: loading {model_dir} ...", flush=True)
    try:
        engine = Engine.load(model_dir, provider=args.provider, threads=args.threads)
    except (ModelError, ValueError) as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        library.close()
        return 3 if isinstance(exc, ModelError) else 2
    daemon = Daemon(engine, config, library)
    daemon.resume(rep.requeued)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        port = daemon.start()
    except OSError as exc:
        print(f"n2m serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        library.close()
        return 1
    proto = "udp" if args.no_tcp else "udp+tcp"
    print(f"n2m serve: listening on {proto} {args.host}:{port} (model {engine.model_id}, pid {os.getpid()})",
          flush=True)
    while not stop.wait(0.5):
        pass
    print("n2m serve: shutting down ...", flush=True)
    daemon.stop()
    library.close()
    print("n2m serve: stopped", flush=True)
    return 0
