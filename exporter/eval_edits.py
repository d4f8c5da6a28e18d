"""`n2m eval MODEL --edits --corpus DIR [--n 20]`: n2m extend, inpaint and vary measured on held-out
corpus renders through the model's own engine and bridge.edit's functions, on the files write_edit
writes (read back), as a producer would get them.

Sources: N held-out renders (44.1 kHz stereo FLAC; "test" and "val" splits), taken round-robin over
the styles (sorted; clips by id), cut to SOURCE_BARS bars from their first downbeat and written as a
24-bit FLAC with an n2m sidecar (prompt: the clip's first caption; bpm, key, mode, meter: its own),
then read back with bridge.edit.read_source. A clip too short for the bars, or whose extension
would pass the model's longest clip, is skipped and named.

Per source, with the clip's seed base + 10 i (plain generations: + 1, + 2):
- extend by EXTEND_BARS bars: length error against source + exactly those bars; the largest
  difference of the first part from the source; the new part's tempo (bridge.tempo) against the
  clip's bpm, octave errors allowed, and its transcribed notes in the clip's scale (Basic Pitch),
  beside two plain generations of the same prompt and controls and the source's own notes;
- inpaint bars INPAINT_BARS: same shape; the largest difference from the source beyond
  XFADE_ALLOW_MS of the region and how far any change spills out of it; the new region's log-mel
  correlation with the source's (each band's mean removed), beside the same figure for the two
  plain generations (two seeds of one prompt); the spectral flux at each join against the highest
  flux at the source's own interior bar lines;
- vary at STRENGTHS: log-mel L1 distance to the source (each band's mean removed), one seed for
  every strength, beside a plain generation's distance.
Writes edits.json and edits.md (per-source rows and the summary, pass or fail against each bar).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from n2m.bridge.controls import BEATS_PER_BAR, tonic_index
from n2m.bridge.edit import extend, inpaint, read_source, source_options, vary, write_edit
from n2m.bridge.request import from_options
from n2m.bridge.tempo import estimate_tempo
from n2m.exporter.metrics.adherence import tempo_scores
from n2m.exporter.metrics.edits import (
    MEL,
    flux_at,
    flux_curve,
    max_abs_diff,
    mel16k,
    mel_correlation,
    mel_l1,
    spill_ms,
)
from n2m.exporter.metrics.notes import in_scale_share
from n2m.exporter.metrics.spectral import mono, resample

SOURCE_BARS = 4
EXTEND_BARS = 4
INPAINT_BARS = (2, 3)  # 1-based, inclusive
STRENGTHS = (0.25, 0.5, 0.75, 1.0)
KEPT_TOL = 2e-3  # kept samples against the source, as 24-bit files
LENGTH_TOL_MS = 5.0
XFADE_ALLOW_MS = 50.0  # the most an inpainting's crossfade may take outside the region
TEMPO_SHARE = 0.9  # new parts within 4% of the source's tempo, octave errors allowed (18 of 20)
PLAIN_RATE = MEL.sample_rate  # plain generations are measured at the mel's rate, mono
NEW_CORR_MAX = 0.9  # an inpainted region correlating more with the source's is a copy, not new


def bar_seconds(clip: dict) -> float:
    return BEATS_PER_BAR[clip.get("meter") or "4/4"] * 60.0 / float(clip["bpm"])


def _unfit(clip: dict, seconds_range: tuple[float, float]) -> str | None:
    """Why the clip cannot be a source here, or None."""
    if not clip.get("bpm") or not clip.get("key") or not clip.get("mode"):
        return "no bpm, key or mode"
    src, total = SOURCE_BARS * bar_seconds(clip), (SOURCE_BARS + EXTEND_BARS) * bar_seconds(clip)
    if float(clip.get("duration") or 0.0) < src - 1e-3:
        return f"{clip.get('duration')} s is shorter than {SOURCE_BARS} bars ({src:.2f} s)"
    if total > seconds_range[1] or src < seconds_range[0]:
        return f"{SOURCE_BARS} + {EXTEND_BARS} bars ({total:.1f} s) do not fit the model's {seconds_range} s"
    return None


def pick_sources(reader, n: int, seconds_range: tuple[float, float]) -> tuple[list[dict], list[dict]]:
    """(sources, skipped): n held-out clips taken round-robin over the styles (each style's next clip
    in id order that fits); skipped: {"id", "why"} for the clips refused on the way."""
    by_style: dict[str, list[dict]] = {}
    for c in sorted(reader.clips("test") + reader.clips("val"), key=lambda c: c["id"]):
        by_style.setdefault(str(c.get("style")), []).append(c)
    queues = [by_style[s] for s in sorted(by_style)]
    chosen, skipped = [], []
    while len(chosen) < n and any(queues):
        for q in queues:  # each style's turn: its next clip that fits
            while q and len(chosen) < n:
                c = q.pop(0)
                why = _unfit(c, seconds_range)
                if not why:
                    chosen.append(c)
                    break
                skipped.append({"id": c["id"], "why": why})
    return chosen, skipped


def write_source(reader, clip: dict, work: Path):
    """The clip's first SOURCE_BARS bars as a 24-bit FLAC with an n2m sidecar, read back as an edit
    source (bridge.edit.Source)."""
    with AudioFile(str(reader.flac_path(clip))) as f:
        audio, rate = f.read(f.frames), int(f.samplerate)
    n = int(round(SOURCE_BARS * bar_seconds(clip) * rate))
    if audio.shape[1] < n:
        raise ValueError(f"{clip['id']}: its FLAC holds {audio.shape[1] / rate:.2f} s, less than {SOURCE_BARS} bars")
    path = work / f"{clip['id']}.flac"
    with AudioFile(str(path), "w", float(rate), audio.shape[0], bit_depth=24) as f:
        f.write(audio[:, :n].astype(np.float32))
    side = {"prompt": (clip.get("captions") or [clip.get("style") or "music"])[0], "bpm": float(clip["bpm"]),
            "controls": {"key": clip["key"], "mode": clip["mode"], "meter": clip.get("meter")}}
    path.with_name(path.name + ".json").write_text(json.dumps(side))
    return read_source(path)


def _written(audio: np.ndarray, src, work: Path, what: str, meta: dict) -> np.ndarray:
    """`audio` as write_edit writes it, read back ([channels, samples] float32)."""
    path = write_edit(audio, src, work, what, meta).audio
    with AudioFile(str(path)) as f:
        out = f.read(f.frames)
    path.unlink()
    path.with_name(path.name + ".json").unlink()
    return out


def _frames(mel: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """The log-mel's frames centred in [t0, t1) s."""
    t = np.arange(mel.shape[1]) / MEL.frame_rate
    return mel[:, (t >= t0) & (t < t1)]


def _in_scale(transcriber, audio: np.ndarray, sr: int, clip: dict) -> float | None:
    if transcriber is None:
        return None
    return in_scale_share(transcriber.notes(audio, sr), tonic_index(clip["key"]), clip["mode"])


def _tempo(audio: np.ndarray, sr: int, bpm: float, meter: str | None = None) -> dict:
    measured = estimate_tempo(np.asarray(audio).mean(axis=0), sr)[0]
    return {"measured": measured, **tempo_scores(bpm, measured or 0.0, meter)}


def extend_row(engine, src, options: dict, clip: dict, work: Path, transcriber) -> dict:
    """The extension against the source: length, kept samples, the new part's tempo and scale."""
    y = _written(extend(engine, src, options, EXTEND_BARS), src, work, "extend", {"edit": "extend"})
    n0, rate = src.audio.shape[1], src.rate
    want = src.seconds + EXTEND_BARS * bar_seconds(clip)
    new = y[:, n0:]
    return {"length_error_ms": 1000.0 * (y.shape[1] / rate - want), "channels": int(y.shape[0]),
            "kept_max_diff": max_abs_diff(y[:, :n0], src.audio),
            "tempo": _tempo(new, rate, float(clip["bpm"]), clip.get("meter")), "in_scale": _in_scale(transcriber, new, rate, clip)}


def inpaint_row(engine, src, options: dict, clip: dict, work: Path, plain: list[np.ndarray]) -> dict:
    """The inpainting against the source: shape, kept samples, the new region's likeness to the
    source's (and, for reference, of two plain generations to each other), flux at the joins."""
    first, last = INPAINT_BARS
    y = _written(inpaint(engine, src, options, first, last), src, work, "inpaint", {"edit": "inpaint"})
    rate, bar = src.rate, bar_seconds(clip)
    t0, t1 = (first - 1) * bar, last * bar
    a, b = int(round(t0 * rate)), min(src.audio.shape[1], int(round(t1 * rate)))
    row: dict = {"same_shape": y.shape == src.audio.shape}
    if not row["same_shape"]:
        return row
    allow = int(round(XFADE_ALLOW_MS / 1000.0 * rate))
    idx = np.arange(y.shape[1])
    row["kept_max_diff"] = max_abs_diff(y, src.audio, (idx < a - allow) | (idx >= b + allow))
    row["spill_ms"] = spill_ms(y, src.audio, a, b, rate, KEPT_TOL)
    row["region_corr"] = mel_correlation(_frames(mel16k(y, rate), t0, t1), _frames(mel16k(src.audio, rate), t0, t1))
    row["plain_pair_corr"] = mel_correlation(*(_frames(mel16k(p, PLAIN_RATE), t0, t1) for p in plain))
    row["join_flux"], row["bar_flux_max"] = _joins(y, src.audio, rate, (t0, t1), bar)
    # the same on the mono mixes at 16 kHz: the band and channels the model makes, without the
    # source's highs and stereo returning after the region
    low = [resample(mono(a), rate, PLAIN_RATE) for a in (y, src.audio)]
    row["join_flux_16k"], row["bar_flux_max_16k"] = _joins(*low, PLAIN_RATE, (t0, t1), bar)
    return row


def _joins(out: np.ndarray, src: np.ndarray, sr: int, joins: tuple[float, ...], bar: float) -> tuple[list, float]:
    """(flux of `out` at each join, the highest flux of `src` at its interior bar lines)."""
    flux, times = flux_curve(out, sr)
    src_flux, src_times = flux_curve(src, sr)
    return ([flux_at(flux, times, t) for t in joins],
            max(flux_at(src_flux, src_times, k * bar) for k in range(1, SOURCE_BARS)))


def vary_row(engine, src, options: dict, work: Path, plain: list[np.ndarray]) -> dict:
    """Log-mel L1 of each strength's variation to the source, and of a plain generation."""
    ref = mel16k(src.audio, src.rate)
    dist = []
    for s in STRENGTHS:
        y = _written(vary(engine, src, {**options, "variations": 1}, s)[0], src, work, "vary", {"strength": s})
        dist.append(mel_l1(mel16k(y, src.rate), ref))
    return {"l1": dist, "monotonic": bool(all(x < y for x, y in zip(dist, dist[1:], strict=False))),
            "plain_l1": mel_l1(mel16k(plain[0], PLAIN_RATE), ref)}


def measure_source(engine, reader, clip: dict, seed: int, work: Path, transcriber) -> dict:
    """Every edit of one source, measured."""
    src = write_source(reader, clip, work)
    options = {**source_options(src, None, None, None), "seed": seed}
    plain = []
    for k in (1, 2):  # two plain generations of the source's prompt and controls, its length
        req = from_options({**options, "seconds": round(src.seconds, 3), "variations": 1, "seed": seed + k})
        clip_k = engine.generate(req)[0]
        plain.append(resample(mono(clip_k.audio), clip_k.sample_rate, PLAIN_RATE)[None])
    row = {"id": clip["id"], "style": clip.get("style"), "bpm": float(clip["bpm"]), "key": clip["key"],
           "mode": clip["mode"], "meter": clip.get("meter"), "seconds": src.seconds, "rate": src.rate,
           "channels": int(src.audio.shape[0]), "prompt": options["prompt"], "seed": seed,
           "source_tempo": _tempo(src.audio, src.rate, float(clip["bpm"]), clip.get("meter")),
           "source_in_scale": _in_scale(transcriber, src.audio, src.rate, clip)}
    shares = [s for s in (_in_scale(transcriber, p, PLAIN_RATE, clip) for p in plain) if s is not None]
    row["plain_in_scale"] = float(np.mean(shares)) if shares else None
    row["extend"] = extend_row(engine, src, options, clip, work, transcriber)
    row["inpaint"] = inpaint_row(engine, src, options, clip, work, plain)
    row["vary"] = vary_row(engine, src, options, work, plain)
    for p in work.glob(f"{clip['id']}.flac*"):
        p.unlink()
    return row


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _check(name: str, figure: str, bar: str, ok: bool | None) -> dict:
    return {"measure": name, "figure": figure, "bar": bar, "pass": ok}


def summarise(rows: list[dict]) -> dict:
    """Aggregates over the measured sources, and each bar with its figure and verdict."""
    ok = [r for r in rows if "error" not in r]
    n = len(ok)
    ext, inp, var = [r["extend"] for r in ok], [r["inpaint"] for r in ok], [r["vary"] for r in ok]
    shaped = [i for i in inp if i["same_shape"]]
    s = {"sources": n, "failed": len(rows) - n,
         "extend": {"length_error_ms_max_abs": max((abs(e["length_error_ms"]) for e in ext), default=None),
                    "kept_max_diff": max((e["kept_max_diff"] for e in ext), default=None),
                    "tempo_octave": sum(e["tempo"]["octave"] for e in ext),
                    "tempo_strict": sum(e["tempo"]["strict"] for e in ext),
                    "tempo_felt": sum(e["tempo"].get("felt", False) for e in ext),
                    "source_tempo_octave": sum(r["source_tempo"]["octave"] for r in ok),
                    "in_scale_mean": _mean(e["in_scale"] for e in ext),
                    "plain_in_scale_mean": _mean(r["plain_in_scale"] for r in ok),
                    "source_in_scale_mean": _mean(r["source_in_scale"] for r in ok)},
         "inpaint": {"same_shape": len(shaped),
                     "kept_max_diff": max((i["kept_max_diff"] for i in shaped), default=None),
                     "spill_ms_max": max((i["spill_ms"] for i in shaped), default=None),
                     "region_corr_mean": _mean(i["region_corr"] for i in shaped),
                     "region_corr_max": max((i["region_corr"] for i in shaped if i["region_corr"] is not None),
                                            default=None),
                     "region_new": sum(i["region_corr"] is not None and i["region_corr"] < NEW_CORR_MAX
                                       for i in shaped),
                     "plain_pair_corr_mean": _mean(i["plain_pair_corr"] for i in shaped),
                     "joins_ok": sum(max(i["join_flux"]) <= i["bar_flux_max"] for i in shaped),
                     "joins_ok_16k": sum(max(i["join_flux_16k"]) <= i["bar_flux_max_16k"] for i in shaped),
                     "join_over_bar_max": max((max(i["join_flux"]) / i["bar_flux_max"] for i in shaped
                                               if i["bar_flux_max"] > 0), default=None)},
         "vary": {"strengths": list(STRENGTHS),
                  "l1_mean": [float(np.mean([v["l1"][k] for v in var])) for k in range(len(STRENGTHS))] if var else [],
                  "monotonic": sum(v["monotonic"] for v in var),
                  "plain_l1_mean": _mean(v["plain_l1"] for v in var)}}
    s["checks"] = _checks(s, len(rows))
    return s


def _checks(s: dict, n: int) -> list[dict]:
    """Each bar against its figure; `n` counts every source taken, so one whose edits failed fails
    the bars that ask for every source."""
    e, i, v = s["extend"], s["inpaint"], s["vary"]
    every = s["failed"] == 0
    need = int(np.ceil(TEMPO_SHARE * n))
    means = v["l1_mean"]

    def f(x, digits=3):
        return "n/a" if x is None else f"{x:.{digits}g}" if abs(x) < 1e-2 else f"{x:.{digits}f}"

    scale_ok = None if e["in_scale_mean"] is None or e["plain_in_scale_mean"] is None else \
        e["in_scale_mean"] >= e["plain_in_scale_mean"]
    return [
        _check(f"extend: length = source + exactly {EXTEND_BARS} bars", f"worst {f(e['length_error_ms_max_abs'])} ms",
               f"<= {LENGTH_TOL_MS:g} ms, every source",
               every and e["length_error_ms_max_abs"] is not None and e["length_error_ms_max_abs"] <= LENGTH_TOL_MS),
        _check("extend: first part = the source (24-bit file)", f"max abs diff {f(e['kept_max_diff'])}",
               f"<= {KEPT_TOL:g}", every and e["kept_max_diff"] is not None and e["kept_max_diff"] <= KEPT_TOL),
        _check("extend: new part's tempo within 4%, octave errors allowed",
               f"{e['tempo_octave']}/{n} (strict {e['tempo_strict']}/{n}; 6/8 also at its dotted-quarter beat "
               f"{e.get('tempo_felt', 'n/a')}/{n}; the meter on the sources' own "
               f"{SOURCE_BARS} bars: {e['source_tempo_octave']}/{n})", f">= {need}/{n}", n > 0 and e["tempo_octave"] >= need),
        _check("extend: new part's notes in the source's scale", f"{f(e['in_scale_mean'])} (plain generations "
               f"{f(e['plain_in_scale_mean'])}; the sources {f(e['source_in_scale_mean'])})",
               ">= plain generations'", scale_ok),
        _check("inpaint: same length and channels", f"{i['same_shape']}/{n}", f"{n}/{n}", n > 0 and i["same_shape"] == n),
        _check(f"inpaint: outside the region (beyond {XFADE_ALLOW_MS:g} ms) = the source",
               f"max abs diff {f(i['kept_max_diff'])}; changes reach {f(i['spill_ms_max'])} ms outside",
               f"<= {KEPT_TOL:g}", every and i["kept_max_diff"] is not None and i["kept_max_diff"] <= KEPT_TOL),
        _check("inpaint: region new (log-mel corr. with the source's, band means removed)",
               f"mean {f(i['region_corr_mean'])}, max {f(i['region_corr_max'])}; {i['region_new']}/{n} below "
               f"{NEW_CORR_MAX:g} (two seeds of one prompt: {f(i['plain_pair_corr_mean'])})",
               f"< {NEW_CORR_MAX:g}, every source", n > 0 and i["region_new"] == n),
        _check("inpaint: flux at the joins <= the source's highest at its bar lines",
               f"{i['joins_ok']}/{n} (worst join / bar-line flux {f(i['join_over_bar_max'])}; on the mono mixes at "
               f"16 kHz, the model's band: {i['joins_ok_16k']}/{n})", f"{n}/{n}",
               n > 0 and i["joins_ok"] == n),
        _check("vary: mean log-mel L1 grows with strength " + "/".join(f"{x:g}" for x in STRENGTHS),
               ", ".join(f(x) for x in means) + f" (plain generation {f(v['plain_l1_mean'])})", "increasing",
               bool(means) and all(a < b for a, b in zip(means, means[1:], strict=False))),
        _check("vary: grows monotonically per source", f"{v['monotonic']}/{n}", f"{n}/{n}",
               n > 0 and v["monotonic"] == n),
    ]


def _g(x, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    return f"{x:.1e}" if 0 < abs(x) < 1e-2 else f"{x:.{digits}f}"


def _source_line(r: dict) -> str:
    if "error" in r:
        return f"| {r['id']} | {r.get('style')} | {r.get('bpm')} | error: {r['error']} |" + " |" * 8
    e, i, v = r["extend"], r["inpaint"], r["vary"]
    bpm = e["tempo"]["measured"]
    corr = f"{_g(i.get('region_corr'))} / {_g(i.get('plain_pair_corr'))}"
    joins = "/".join(_g(x, 0) for x in i.get("join_flux", [])) + f" vs {_g(i.get('bar_flux_max'), 0)}"
    return (f"| {r['id']} | {r['style']} | {r['bpm']:g} {r['meter']} | {_g(e['length_error_ms'], 3)} | "
            f"{_g(e['kept_max_diff'])} | {_g(bpm, 1)} {'ok' if e['tempo']['octave'] else 'off'} | "
            f"{_g(e['in_scale'])} / {_g(r['plain_in_scale'])} / {_g(r['source_in_scale'])} | "
            f"{_g(i.get('kept_max_diff'))}, {_g(i.get('spill_ms'), 1)} | {corr} | {joins} | "
            f"{' '.join(_g(x) for x in v['l1'])} {'up' if v['monotonic'] else 'NOT up'} | {_g(v['plain_l1'])} |")


def report(data: dict) -> str:
    s = data["summary"]
    failed = f" ({s['failed']} more failed: see their rows)" if s["failed"] else ""
    lines = [f"# Edits: {data['model_id']}", "",
             f"`n2m eval MODEL --edits --corpus {data['corpus_dir']} --n {data['n']} --seed {data['seed']}` on "
             f"corpus {data['corpus_id']}: {s['sources']} held-out renders{failed}, round-robin over styles, each cut to "
             f"{SOURCE_BARS} bars; extend by {EXTEND_BARS} bars, inpaint bars {INPAINT_BARS[0]}-{INPAINT_BARS[1]}, "
             f"vary at {', '.join(f'{x:g}' for x in STRENGTHS)}. Measured on the files write_edit writes.", "",
             "| measure | figure | bar | pass |", "|---|---|---|---|"]
    for c in s["checks"]:
        verdict = "n/a" if c["pass"] is None else "pass" if c["pass"] else "FAIL"
        lines.append(f"| {c['measure']} | {c['figure']} | {c['bar']} | {verdict} |")
    lines += ["", "Per source (extend: length error ms, kept max diff, new part's bpm, in-scale share of the "
              "extension / plain generations / the source; inpaint: kept max diff beyond "
              f"{XFADE_ALLOW_MS:g} ms and how far changes reach outside (ms), region correlation with the source / "
              "of two plain generations, flux at the two joins vs the source's highest at its bar lines; vary: "
              "log-mel L1 by strength, and a plain generation's):", "",
              "| source | style | bpm, meter | ext. len. err. | ext. kept | ext. bpm | in scale ext/plain/src "
              "| inp. kept, spill | inp. corr / plain pair | join flux vs bar lines | vary L1 | plain L1 |",
              "|" + "---|" * 12]
    lines += [_source_line(r) for r in data["rows"]]
    if data["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k['id']} ({k['why']})" for k in data["skipped"]) + "."]
    lines += ["", f"Tempo: bridge.tempo.estimate_tempo on the new {EXTEND_BARS} bars; in scale: Basic Pitch notes "
              "(amplitude > 0.3) in the clip's key and mode; log-mels: 80-bin, 16 kHz mono, 50 frames/s; flux: "
              f"rectified log-magnitude spectral flux at the file's rate, peak within 50 ms of the time. "
              f"{data['seconds']:.0f} s in all."]
    return "\n".join(lines) + "\n"


def run_edits(engine, corpus: str | Path, out: str | Path, n: int = 20, seed: int = 0, log=print) -> dict:
    """Measure n sources; write edits.json and edits.md under `out`; return the summary."""
    from n2m.bridge.request import RequestError
    from n2m.exporter.corpus.reader import CorpusReader
    from n2m.exporter.metrics.transcribe import Transcriber, TranscriberUnavailable

    reader = CorpusReader(corpus)
    clips, skipped = pick_sources(reader, n, tuple(engine.manifest.controls.seconds_range))
    if not clips:
        raise ValueError(f"{corpus} has no held-out clip that fits {SOURCE_BARS} + {EXTEND_BARS} bars")
    try:
        transcriber = Transcriber()
    except TranscriberUnavailable as exc:
        log(f"eval --edits: the in-scale meters are off: {exc}")
        transcriber = None
    rows, t_start = [], time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="n2m-edits-"))
    try:
        for i, clip in enumerate(clips):
            try:
                rows.append(measure_source(engine, reader, clip, seed + 10 * i, work, transcriber))
            except (RequestError, ValueError) as exc:
                rows.append({"id": clip["id"], "style": clip.get("style"), "bpm": clip.get("bpm"), "error": str(exc)})
            el = time.monotonic() - t_start
            log(f"edits {i + 1}/{len(clips)} {clip['id']} eta {el / (i + 1) * (len(clips) - i - 1):.0f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data = {"model_id": engine.model_id, "corpus_id": reader.info.get("id"), "corpus_dir": Path(corpus).name,
            "n": n, "seed": seed, "skipped": skipped, "seconds": time.monotonic() - t_start,
            "settings": {"source_bars": SOURCE_BARS, "extend_bars": EXTEND_BARS, "inpaint_bars": list(INPAINT_BARS),
                         "strengths": list(STRENGTHS), "kept_tol": KEPT_TOL, "length_tol_ms": LENGTH_TOL_MS,
                         "xfade_allow_ms": XFADE_ALLOW_MS, "tempo_share": TEMPO_SHARE, "new_corr_max": NEW_CORR_MAX},
            "summary": summarise(rows), "rows": rows}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "edits.json").write_text(json.dumps(data, indent=1, default=_json))
    (out / "edits.md").write_text(report(data))
    return data["summary"]


def _json(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def main_edits(args) -> int:
    """`n2m eval MODEL --edits`, from exporter.evaluate.main."""
    import sys

    from n2m.bridge.generate import load_engine
    from n2m.bridge.manifest import ModelError
    from n2m.bridge.modelpath import resolve_model
    from n2m.exporter.corpus.reader import CorpusError

    try:
        if not args.model:
            raise ValueError("--edits measures MODEL's engine: give MODEL (an exported cascade folder or name)")
        model_dir = resolve_model(args.model)
        if not (model_dir / "manifest.json").is_file():
            raise ValueError(f"{args.model}: --edits runs an exported cascade (a folder with manifest.json)")
        engine = load_engine(str(model_dir), "cpu", args.threads)
        out = Path(args.out) if args.out else model_dir
        summary = run_edits(engine, args.corpus, out, args.n or 20, args.seed,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    except (FileNotFoundError, ValueError, CorpusError, ModelError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1, default=_json))
    print(f"report: {out / 'edits.md'}", file=sys.stderr)
    return 0
