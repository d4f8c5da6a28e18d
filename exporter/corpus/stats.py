"""`n2m corpus stats`: the distribution of styles, tempi, keys, modes, meters, instruments,
soundfonts, splits and durations, as a table on the terminal and a PNG plot."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from .reader import CorpusError, CorpusReader


def collect(reader: CorpusReader) -> dict:
    clips = reader.clips()
    return {
        "clips": len(clips),
        "hours": sum(c["duration"] for c in clips) / 3600.0,
        "style": Counter(c["style"] for c in clips),
        "key": Counter(c["key"] for c in clips),
        "mode": Counter(c["mode"] for c in clips),
        "meter": Counter(c["meter"] for c in clips),
        "split": Counter(c["split"] for c in clips),
        "soundfont": Counter(c["soundfont"] for c in clips),
        "instrument": Counter(i for c in clips for i in c["instruments"]),
        "program": Counter(p for c in clips for p in c["programs"]),
        "drum_kit": Counter(c["drum_kit"] for c in clips if c["drum_kit"] is not None),
        "drum_soundfont": Counter(c["drum_soundfont"] for c in clips if c.get("drum_soundfont")),
        "meter_seconds": Counter({m: sum(c["duration"] for c in clips if c["meter"] == m)
                                  for m in {c["meter"] for c in clips}}),
        "bpm": np.array([c["bpm"] for c in clips]),
        "duration": np.array([c["duration"] for c in clips]),
        "compositions": len({c["composition_id"] for c in clips}),
    }


def table(s: dict) -> str:
    lines = [f"{s['clips']} clips, {s['hours']:.2f} h, {s['compositions']} compositions, "
             f"{len(s['program'])} distinct GM programs, {len(s['drum_kit'])} drum kits"]
    if s["clips"]:
        b, d = s["bpm"], s["duration"]
        lines.append(f"tempo: min {b.min():.0f} / median {np.median(b):.0f} / max {b.max():.0f} bpm; "
                     f"duration: min {d.min():.1f} / median {np.median(d):.1f} / max {d.max():.1f} s")
        hist, edges = np.histogram(b, bins=np.arange(60, 190, 10))
        lines.append("tempo histogram: " + ", ".join(f"{int(e)}-{int(e) + 9}: {h}" for e, h in zip(edges, hist, strict=False)))
        triple = sum(v for m, v in s["meter"].items() if m != "4/4")
        triple_s = sum(v for m, v in s["meter_seconds"].items() if m != "4/4")
        lines.append(f"3/4 or 6/8: {100 * triple / s['clips']:.1f}% of clips, "
                     f"{100 * triple_s / max(1e-9, d.sum()):.1f}% of the audio")
    for name in ("style", "key", "mode", "meter", "split", "soundfont", "drum_kit", "drum_soundfont"):
        items = sorted(s[name].items(), key=lambda kv: (-kv[1], str(kv[0])))
        lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in items))
    top = s["instrument"].most_common(30)
    lines.append("instruments (top 30): " + ", ".join(f"{k} {v}" for k, v in top))
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(16, 9))

    def bars(a, counter, title, rot=60, top=None):
        items = counter.most_common(top) if top else sorted(counter.items(), key=lambda kv: str(kv[0]))
        a.bar([str(k) for k, _ in items], [v for _, v in items], color="#4477aa")
        a.set_title(title)
        a.tick_params(axis="x", rotation=rot, labelsize=7)

    bars(ax[0, 0], s["style"], "clips per style")
    ax[0, 1].hist(s["bpm"], bins=np.arange(60, 185, 5), color="#aa7744")
    ax[0, 1].set_title("tempo (bpm)")
    from n2m.bridge.controls import TONICS

    keys = Counter({k: s["key"].get(k, 0) for k in TONICS})
    a = ax[0, 2]
    a.bar(list(TONICS), [keys[k] for k in TONICS], color="#44aa77")
    a.set_title("keys; modes: " + ", ".join(f"{k} {v}" for k, v in s["mode"].items()))
    bars(ax[1, 0], s["instrument"], "instruments (top 25)", top=25)
    ax[1, 1].hist(s["duration"], bins=20, color="#7744aa")
    ax[1, 1].set_title("clip duration (s)")
    bars(ax[1, 2], s["meter"] + Counter({f"sf:{k}": v for k, v in s["soundfont"].items()}), "meters and soundfonts", rot=30)
    fig.suptitle(f"corpus: {s['clips']} clips, {s['hours']:.2f} h")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main_stats(args) -> int:
    try:
        reader = CorpusReader(args.corpus)
    except CorpusError as exc:
        print(f"n2m corpus stats: {exc}")
        return 2
    s = collect(reader)
    print(table(s))
    if s["clips"]:
        path = args.plot or (Path(args.corpus) / "stats.png")
        plot(s, path)
        print(f"plot: {path}")
    return 0
