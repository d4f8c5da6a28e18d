"""`n2m eval MODEL --superres`: how well the 16 kHz -> 48 kHz super-resolution stage restores what a
48 kHz render has above 8 kHz, measured on held-out renders of a corpus built with `--audio48k`.

For each held-out clip (splits "val" and "test"), a segment of its 48 kHz render is the reference; its
16 kHz version (soxr HQ, as in training) is what the stage gets. Four candidates are compared with
the reference on 48 kHz STFT power spectra (n_fft 2048, hop 512, Hann):
- "model": the superres stage as the runtime runs it: its output above the crossover, the input's
  own band below (bridge.cascade.superres_band: input kept up to 7 kHz, stage from 8 kHz);
- "model_raw": the stage's output alone, with no crossover (what it makes of the low band too);
- "upsampled": the runtime's band-limited upsampling of the 16 kHz input (what a clip is without the
  stage: nothing above 8 kHz);
- "noise_fill": the upsampled input plus white noise high-passed at 8 kHz, scaled per segment to the
  reference's own energy above 8 kHz. It knows the true high-band level, which the model must guess,
  so it is a strong, partly oracle, baseline for the level, and a weak one for the shape.

Meters (lower is better unless said): log-spectral distance (dB) over the high band (8-24 kHz) and the
low band (0-7 kHz, below the resamplers' transition band: the stage must keep what it was given); high-band envelope error (dB; sixteen
1 kHz bands per frame, mean absolute difference of their energies); high-band energy ratio (dB,
candidate / reference, 0 is right); seconds of compute per second of audio. Power has a floor of
-100 dB re full scale, so silence scores as that floor rather than minus infinity.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SR48 = 48000
SR16 = 16000
N_FFT = 2048
HOP = 512
FLOOR_DB = -100.0
SPLIT_HZ = 8000.0
PASS_HZ = 7000.0  # below the 16 kHz resamplers' transition band (7-8 kHz): what the stage is given


def _power(x: np.ndarray) -> np.ndarray:
    """[frames, bins] STFT power of a mono float signal (Hann, N_FFT, HOP), normalised so a
    full-scale sine has power ~1 in its bin."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    win = np.hanning(N_FFT)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spec = np.fft.rfft(frames * win, axis=-1)
    return (np.abs(spec) / (win.sum() / 2)) ** 2


def _db(p: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(p, 10 ** (FLOOR_DB / 10)))


def band_meters(ref: np.ndarray, x: np.ndarray) -> dict:
    """Meters of candidate `x` against reference `ref` (both mono 48 kHz, same length)."""
    pr, px = _power(ref), _power(x)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SR48)
    lo, hi = freqs < PASS_HZ, freqs >= SPLIT_HZ
    dr, dx = _db(pr), _db(px)

    def lsd(mask: np.ndarray) -> float:
        return float(np.mean(np.sqrt(np.mean((dr[:, mask] - dx[:, mask]) ** 2, axis=1))))

    edges = np.linspace(SPLIT_HZ, SR48 / 2, 17)
    band = np.clip(np.searchsorted(edges, freqs[hi], side="right") - 1, 0, 15)
    er = np.stack([pr[:, hi][:, band == b].sum(axis=1) for b in range(16)], axis=1)
    ex = np.stack([px[:, hi][:, band == b].sum(axis=1) for b in range(16)], axis=1)
    env = float(np.mean(np.abs(_db(er) - _db(ex))))
    ratio = float(_db(np.array(px[:, hi].sum())) - _db(np.array(pr[:, hi].sum())))
    return {"lsd_high_db": lsd(hi), "lsd_low_db": lsd(lo), "hf_envelope_db": env, "hf_energy_ratio_db": ratio}


def _highpass(x: np.ndarray) -> np.ndarray:
    """x with everything below SPLIT_HZ removed (a brick-wall FFT filter over the whole segment)."""
    spec = np.fft.rfft(np.asarray(x, np.float64))
    spec[np.fft.rfftfreq(len(x), 1.0 / SR48) < SPLIT_HZ] = 0
    return np.fft.irfft(spec, n=len(x))


def _noise_fill(up: np.ndarray, ref: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The upsampled input plus white noise high-passed at 8 kHz, at the reference's high-band energy."""
    hp = _highpass(rng.standard_normal(len(up)))
    target, have = float(np.sum(_highpass(ref) ** 2)), float(np.sum(hp ** 2))
    gain = np.sqrt(target / have) if have > 0 else 0.0
    return (up + gain * hp).astype(np.float32)


class _TorchSuperres:
    def __init__(self, ckpt: str | Path, steps: int, sampler: str, aug: float) -> None:
        from n2m.exporter.models.pipeline import AudioCascaderRunner, load_checkpoint

        p = Path(ckpt)
        p = p / "last.pt" if p.is_dir() else p
        model, ck = load_checkpoint(p)
        if ck["stage"] != "superres":
            raise ValueError(f"{p} is a {ck['stage']} checkpoint, expected superres")
        self.runner = AudioCascaderRunner(model)
        self.steps, self.sampler = int(steps), sampler
        self.aug = min(float(aug), float(model.cfg.aug_max))
        self.id = f"torch:{p}"
        self.settings = {"steps": self.steps, "sampler": sampler, "cond_aug": self.aug}
        self.cond_rate = float(model.cfg.cond_rate)

    def __call__(self, low: np.ndarray, seed: int) -> np.ndarray:
        """The stage's raw 48 kHz output (no crossover)."""
        return self.runner.run(low, seed, self.steps, self.sampler, self.aug)


class _OnnxSuperres:
    def __init__(self, model_dir: str | Path, threads: int | None) -> None:
        from n2m.bridge.engine import Engine

        self.engine = Engine.load(model_dir, provider="cpu", threads=threads)
        sup = self.engine.manifest.superres
        if sup is None:
            raise ValueError(f"{model_dir} has no superres stage")
        self.id = f"onnx:{model_dir}"
        self.settings = {"steps": sup.default_steps, "sampler": sup.default_sampler, "cond_aug": sup.cond_aug}
        self.cond_rate = float(sup.cond_rate)

    def __call__(self, low: np.ndarray, seed: int) -> np.ndarray:
        """The stage's raw 48 kHz output (no crossover)."""
        return self.engine.superres(low[None], [seed], keep_low=False)[0]


def open_superres(model: str | Path, threads: int | None = None):
    """An exported cascade with a superres stage (run with its manifest's settings), or a superres
    checkpoint (file or run dir, run with the settings `n2m export` writes by default)."""
    p = Path(model)
    if p.is_dir() and (p / "manifest.json").is_file():
        return _OnnxSuperres(p, threads)
    if (p.is_dir() and (p / "last.pt").is_file()) or p.is_file():
        from n2m.exporter.export import ExportOptions

        o = ExportOptions()
        return _TorchSuperres(p, o.superres_steps, o.superres_sampler, o.cond_aug)
    raise FileNotFoundError(f"{model}: neither an exported cascade nor a superres checkpoint")


def evaluate_superres(model, corpus: str | Path, out: str | Path, n: int | None = None,
                      seconds: float = 4.0, seed: int = 0, log=print) -> dict:
    """Measure `model` (from open_superres) on up to n held-out clips; writes superres.json,
    superres.md and superres.png under `out`, returns the summary."""
    from n2m.bridge.cascade import superres_band
    from n2m.bridge.resample import keep_low_band, upsample
    from n2m.exporter.corpus.reader import CorpusReader
    from n2m.exporter.data import _resample

    reader = CorpusReader(corpus)
    clips = [c for c in reader.clips() if c["split"] in ("val", "test")]
    if not reader.has_audio48k:
        reader.audio48k(clips[0] if clips else {})  # raises CorpusError naming the fix
    if not clips:
        raise ValueError(f"{corpus} has no held-out (val/test) clips")
    clips = clips[:n] if n else clips
    frame = SR48 // 50  # 960: segments are whole 50 Hz grid frames, as the engine requires
    seg = max(1, int(round(seconds * 50))) * frame
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, compute_s, audio_s = [], 0.0, 0.0
    keep = None
    for i, clip in enumerate(clips):
        hi = reader.audio48k(clip)
        if len(hi) < seg:
            continue
        start = (len(hi) - seg) // 2 // frame * frame  # the middle: past intros and fades
        ref = hi[start:start + seg].astype(np.float32)
        low = _resample(ref, SR48, SR16)
        up = upsample(low, 3)
        t0 = time.perf_counter()
        raw = np.asarray(model(low, seed + i), dtype=np.float32)
        y = keep_low_band(up, np.nan_to_num(raw), SR48, *superres_band(model.cond_rate))
        dt = time.perf_counter() - t0
        compute_s += dt
        audio_s += seg / SR48
        row = {"clip": clip.get("id"), "style": clip.get("style"), "seconds": seg / SR48, "compute_s": dt,
               "nan": bool(not np.isfinite(raw).all())}
        raw = np.nan_to_num(raw)
        for name, cand in (("model", y), ("model_raw", raw), ("upsampled", up),
                           ("noise_fill", _noise_fill(up, ref, rng))):
            row[name] = band_meters(ref, cand)
        rows.append(row)
        if keep is None:
            keep = (ref, up, y)
        log(f"[{i + 1}/{len(clips)}] {row['style']}: lsd_high model {row['model']['lsd_high_db']:.1f} "
            f"upsampled {row['upsampled']['lsd_high_db']:.1f} noise_fill {row['noise_fill']['lsd_high_db']:.1f} dB "
            f"({dt:.2f} s)")
    if not rows:
        raise ValueError(f"no held-out clip of {corpus} is {seg / SR48:g} s long")
    agg = {name: {k: float(np.mean([r[name][k] for r in rows])) for k in rows[0][name]}
           for name in ("model", "model_raw", "upsampled", "noise_fill")}
    summary = {"model": model.id, "settings": model.settings, "corpus": str(corpus), "clips": len(rows),
               "segment_seconds": seg / SR48, "meters": agg,
               "compute_s_per_audio_s": compute_s / audio_s, "nan_clips": int(sum(r["nan"] for r in rows)),
               "rows": rows}
    (out / "superres.json").write_text(json.dumps(summary, indent=1))
    (out / "superres.md").write_text(_report(summary))
    if keep is not None:
        _plot(out / "superres.png", *keep)
    return summary


def _report(s: dict) -> str:
    m = s["meters"]
    lines = [f"# Super-resolution: {s['model']}", "",
             f"{s['clips']} held-out 48 kHz renders of {s['corpus']}, {s['segment_seconds']:g} s each; settings "
             f"{s['settings']}; {s['compute_s_per_audio_s']:.3f} s of compute per second of audio; "
             f"NaN clips {s['nan_clips']}.", "",
             "| candidate | LSD 8-24 kHz (dB) | LSD 0-7 kHz (dB) | HF envelope error (dB) | HF energy vs reference (dB) |",
             "|---|---|---|---|---|"]
    for name in ("model", "model_raw", "upsampled", "noise_fill"):
        r = m[name]
        lines.append(f"| {name} | {r['lsd_high_db']:.2f} | {r['lsd_low_db']:.2f} | {r['hf_envelope_db']:.2f} | "
                     f"{r['hf_energy_ratio_db']:+.2f} |")
    lines += ["", "model: the stage as the runtime runs it (the input's own band kept below the crossover); "
              "model_raw: the stage's output alone; upsampled: the 16 kHz input upsampled (no stage); "
              "noise_fill: that plus high-passed white noise at the reference's own high-band energy "
              "(an oracle for the level)."]
    return "\n".join(lines) + "\n"


def _plot(path: Path, ref: np.ndarray, up: np.ndarray, y: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, (title, x) in zip(axes, (("48 kHz render", ref), ("16 kHz upsampled", up), ("superres", y)), strict=True):
        d = _db(_power(x)).T
        ax.imshow(d, origin="lower", aspect="auto", vmin=FLOOR_DB, vmax=0, cmap="magma",
                  extent=(0, len(x) / SR48, 0, SR48 / 2000))
        ax.axhline(SPLIT_HZ / 1000, color="w", lw=0.6, ls="--")
        ax.set_title(title)
        ax.set_xlabel("s")
    axes[0].set_ylabel("kHz")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["band_meters", "evaluate_superres", "open_superres"]
