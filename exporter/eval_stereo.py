"""The stereo measures of `n2m eval`, taken on the model's native output.

Per clip: the energy above 8 kHz (dB of the total), side/mid (dB), the left/right correlation, and
the mono fold-down: the BS.1770 loudness of (L+R)/2 on both channels minus that of the stereo clip.
Per style: the generated clips' medians against the held-out renders' (their 44.1 kHz stereo FLACs,
cut to the same seconds) median and 10th/90th percentiles, passing when
- the median energy above 8 kHz is within 10 dB of the renders' median,
- the median side/mid and L/R correlation lie between the renders' 10th and 90th percentiles,
- the median fold-down difference is within 1.5 dB (a fold-down loses loudness when the channels
  differ: 0 dB for identical channels, about -3 dB for independent ones, silence for anti-phase).
A mono model's fields say "mono" instead of failing; the renders' figures are reported either way.
"""

from __future__ import annotations

import math

import numpy as np

from n2m.bridge.loudness import ABS_GATE_LUFS, integrated_loudness
from n2m.exporter.metrics.spectral import energy_above_db
from n2m.exporter.metrics.stereo import lr_correlation, side_mid_db

MEASURES = ("high_db", "side_mid_db", "lr_corr", "folddown_db")
MONO = "mono"
HIGH_WITHIN_DB = 10.0
FOLDDOWN_WITHIN_DB = 1.5
PERCENTILES = (10, 50, 90)


def folddown_db(audio: np.ndarray, sr: int) -> float | None:
    """LUFS of the mono fold-down ((L+R)/2 on both channels) minus LUFS of stereo [2, n] audio; a
    fold-down below the -70 LUFS gate counts as -70 LUFS; None for a silent clip."""
    x = np.asarray(audio, dtype=np.float64)
    stereo = integrated_loudness(x, sr)
    if not math.isfinite(stereo):
        return None
    mid = 0.5 * (x[0] + x[1])
    folded = integrated_loudness(np.stack([mid, mid]), sr)
    return float(max(folded, ABS_GATE_LUFS) - stereo)


def clip_measures(audio: np.ndarray, sr: int) -> dict:
    """The four measures of one clip ([2, n] stereo), or "mono" for each when it has one channel."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float32))
    if x.ndim == 1 or x.shape[0] == 1:
        return dict.fromkeys(MEASURES, MONO)
    if x.shape[0] != 2:
        raise ValueError(f"stereo measures take [2, samples] audio, got {x.shape}")
    return {"high_db": energy_above_db(x, sr), "side_mid_db": side_mid_db(x), "lr_corr": lr_correlation(x),
            "folddown_db": folddown_db(x, sr)}


def render_measures(reader, held: list[dict], max_seconds: float | None) -> dict:
    """{"clips": [(style, measures)], "missing": clips without a FLAC} of the held-out renders,
    each cut to max_seconds."""
    from n2m.exporter.eval_ceiling import load_render

    clips, missing = [], 0
    for c in held:
        if not c.get("flac") or not reader.flac_path(c).is_file():
            missing += 1
            continue
        audio, sr = load_render(reader, c, max_seconds)
        clips.append((c["style"], clip_measures(audio, sr)))
    return {"clips": clips, "missing": missing, "seconds": max_seconds}


def _values(ms: list[dict], k: str) -> list[float]:
    return [float(m[k]) for m in ms if isinstance(m.get(k), int | float) and m[k] is not None]


def _spread(vals: list[float]) -> dict | None:
    if not vals:
        return None
    p10, med, p90 = (float(v) for v in np.percentile(vals, PERCENTILES))
    return {"p10": p10, "median": med, "p90": p90, "n": len(vals)}


def _passes(k: str, gen: float, ref: dict) -> bool:
    if k == "high_db":
        return abs(gen - ref["median"]) <= HIGH_WITHIN_DB
    if k == "folddown_db":
        return abs(gen) <= FOLDDOWN_WITHIN_DB
    return ref["p10"] <= gen <= ref["p90"]


def _style(gen: list[dict], ref: list[dict], mono: bool) -> dict:
    """One style's generated medians, the renders' spread and pass/fail per measure."""
    out: dict = {"n": len(gen), "generated": {}, "renders": {}, "pass": {}}
    for k in MEASURES:
        r = _spread(_values(ref, k))
        out["renders"][k] = r
        if mono:
            out["generated"][k] = out["pass"][k] = MONO
            continue
        vals = _values(gen, k)
        g = float(np.median(vals)) if vals else None
        out["generated"][k] = g
        out["pass"][k] = None if g is None or (r is None and k != "folddown_db") else _passes(k, g, r)
    return out


def summarise(rows: list[dict], renders: dict, channels: int) -> dict:
    """Per style (the styles of the generated rows, each row's measures under "stereo"), and how
    many styles pass each bar."""
    mono = channels < 2
    ref_by: dict[str, list[dict]] = {}
    for style, m in renders["clips"]:
        ref_by.setdefault(style, []).append(m)
    styles = sorted({r["style"] for r in rows if r.get("style")})
    per = {s: _style([r["stereo"] for r in rows if r.get("style") == s], ref_by.get(s, []), mono) for s in styles}
    passed: dict = {}
    for k in MEASURES:
        judged = [p["pass"][k] for p in per.values() if isinstance(p["pass"][k], bool)]
        passed[k] = MONO if mono else {"passed": int(sum(judged)), "styles": len(judged)}
    fold = _values([r["stereo"] for r in rows], "folddown_db")
    return {
        "channels": channels, "stereo": not mono,
        "bars": {"high_db": f"median within {HIGH_WITHIN_DB:g} dB of the renders' median",
                 "side_mid_db": "median within the renders' 10th..90th percentiles",
                 "lr_corr": "median within the renders' 10th..90th percentiles",
                 "folddown_db": f"median within {FOLDDOWN_WITHIN_DB:g} dB of 0"},
        "renders": {"clips": len(renders["clips"]), "missing_flac": renders["missing"],
                    "seconds": renders["seconds"], "all": {k: _spread(_values([m for _, m in renders["clips"]], k))
                                                           for k in MEASURES}},
        "styles": per, "passed": passed,
        "folddown_clips_within": MONO if mono else (float(np.mean([abs(v) <= FOLDDOWN_WITHIN_DB for v in fold]))
                                                   if fold else None),
    }


def _v(x, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    return x if isinstance(x, str) else f"{x:.{digits}f}"


def _cell(st: dict, k: str, digits: int = 1) -> str:
    """"generated (renders' reference) verdict" of one style and measure."""
    g, r, p = st["generated"][k], st["renders"][k], st["pass"][k]
    verdict = p if isinstance(p, str) else {True: "pass", False: "FAIL", None: "n/a"}[p]
    if r is None:
        ref = "no renders"
    elif k in ("high_db", "folddown_db"):
        ref = _v(r["median"], digits)
    else:
        ref = f"{_v(r['p10'], digits)}..{_v(r['p90'], digits)}"
    return f"{_v(g, digits)} ({ref}) {verdict}"


def report_lines(s: dict) -> list[str]:
    """The report's per-style stereo table (summary key "stereo")."""
    st = s.get("stereo")
    if not st:
        return []
    r = st["renders"]
    head = ("The model is mono: its stereo fields say \"mono\"; the renders' figures are the reference."
            if not st["stereo"] else "Generated medians per style; in brackets the held-out renders' median "
            "(energy, fold-down) or 10th..90th percentiles (side/mid, L/R correlation).")
    lines = ["", f"Stereo and band, on the native output ({st['channels']} channel(s)); held-out renders: "
             f"{r['clips']} FLACs ({r['missing_flac']} missing), first {_v(r['seconds'], 0)} s. {head}", "",
             "| style | n | energy > 8 kHz, dB | side/mid, dB | L/R correlation | fold-down - stereo, LU |",
             "|---|---|---|---|---|---|"]
    for style, x in st["styles"].items():
        lines.append(f"| {style} | {x['n']} | {_cell(x, 'high_db')} | {_cell(x, 'side_mid_db')} | "
                     f"{_cell(x, 'lr_corr', 2)} | {_cell(x, 'folddown_db', 2)} |")
    passed = st["passed"]
    lines.append("")
    counts = [f"{k} {v}" if isinstance(v, str) else f"{k} {v['passed']}/{v['styles']}" for k, v in passed.items()]
    lines.append(f"Styles passing: {', '.join(counts)}; clips with fold-down within {FOLDDOWN_WITHIN_DB:g} dB: "
                 f"{_v(st['folddown_clips_within'], 2)}.")
    return lines
