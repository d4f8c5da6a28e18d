"""`n2m eval MODEL`: generate for the evaluation prompt set and measure how well the prompt is followed.

MODEL is an exported ONNX cascade directory (with manifest.json; run through n2m.bridge.engine) or a
pair of training checkpoints "GENERATOR.pt,VOCODER.pt" (run dirs work too: their last.pt is used),
run in torch with the runtime's numpy samplers. `--vocoder griffin-lim` renders the generator's
log-mel without the cascader (to evaluate a generator before its vocoder is trained).

Measured, per prompt and in aggregate (JSON + markdown report + plots under --out):
- tempo adherence: librosa beat tracking; fraction within 4% of the requested BPM (strict) and with
  octave errors allowed (x2, x1/2), median relative error;
- key adherence: chroma + Krumhansl-Schmuckler profiles; tonic matches or relative major/minor;
  beside it the key found from Basic Pitch's transcribed notes and the share of those notes in the
  requested scale (exporter.eval_notes);
- style adherence: the corpus-trained audio classifier (exporter.classifier) agrees with the
  prompt's style; instrument adherence where the prompt names instruments the classifier knows;
- Frechet distances on the classifier's embeddings (PCA to a few dimensions, fitted on training
  renders): FD of generated clips against held-out renders (audio only), and the prompt-aware
  Frechet Joint Distance (FJD: audio embedding joined with the prompt style's mean embedding),
  beside its two references: held-out against held-out (the floor) and the generated clips paired
  with shuffled prompts (what ignoring the prompt scores);
- sanity: NaN, clipping, silence, DC offset.
The same analysers are also run on held-out renders against their own labels ("oracle"), which
shows what the measurements themselves miss.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from n2m.bridge.controls import (
    BEATS_PER_BAR,
    MODES,
    TONICS,
    ControlError,
    Controls,
    relative_tonic,
    tonic_index,
)
from n2m.bridge.features import MelSpec, log_mel

SR = 16000



# ----------------------------------------------------------------------------- analysers


def measure_tempo(audio: np.ndarray, sr: int = SR) -> float:
    import librosa

    if not np.isfinite(audio).all() or np.abs(audio).max() < 1e-6:
        return 0.0
    tempo, _ = librosa.beat.beat_track(y=audio.astype(np.float32), sr=sr)
    return float(np.atleast_1d(tempo)[0])


def tempo_scores(requested: float, measured: float) -> dict:
    if measured <= 0:
        return {"strict": False, "octave": False, "rel_error": 1.0}
    rel = abs(measured - requested) / requested
    octave = min(abs(measured * f - requested) / requested for f in (1.0, 2.0, 0.5))
    return {"strict": rel <= 0.04, "octave": octave <= 0.04, "rel_error": rel, "octave_rel_error": octave}


def measure_key(audio: np.ndarray, sr: int = SR, bar_seconds: float | None = None) -> tuple[int, str]:
    """(tonic pitch class, "major"|"minor"): the corpus verifier's key finder (chroma against
    harmonic Krumhansl-Kessler profiles, the bass register's home note, opening and closing bars
    weighted). On the 51 held-out 10 s renders of corpus v4 it finds the tonic or relative key for
    0.82 of clips, where plain K-K on mean chroma (the first meter here) found 0.73."""
    from n2m.exporter.corpus.verify import estimate_key

    return estimate_key(np.asarray(audio, dtype=np.float32), sr, bar_seconds)


def bar_seconds(bpm: float | None, meter: str | None) -> float | None:
    if not bpm:
        return None
    return BEATS_PER_BAR[meter or "4/4"] * 60.0 / float(bpm)


def parent_major(tonic: int, mode: str) -> int:
    """The major key sharing the scale (A minor -> C, D dorian -> C, G mixolydian -> C)."""
    return tonic if mode == "major" else relative_tonic(tonic, mode)


def key_scores(req_key: str, req_mode: str | None, est: tuple[int, str]) -> dict:
    """Tonic match, or the relative key (the same parent major scale) when the mode was asked."""
    req = tonic_index(req_key)
    tonic = est[0] == req
    rel = False
    if req_mode:
        rel = parent_major(est[0], est[1]) == parent_major(req, req_mode)
    return {"tonic": tonic, "tonic_or_relative": tonic or rel, "estimated": f"{TONICS[est[0]]} {est[1]}"}


def sanity(audio: np.ndarray) -> dict:
    finite = bool(np.isfinite(audio).all())
    a = np.nan_to_num(audio)
    rms = float(np.sqrt(np.mean(a**2))) if a.size else 0.0
    return {
        "nan": not finite,
        "clipping": float(np.mean(np.abs(a) >= 0.999)) > 1e-3,
        "silence": rms < 1e-3,  # below -60 dBFS
        "dc": abs(float(np.mean(a))) > 0.01,
        "rms_dbfs": 20 * np.log10(max(rms, 1e-10)),
        "peak": float(np.abs(a).max()) if a.size else 0.0,
    }


def frechet(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to the rows of a and b.

    tr sqrt(C1 C2) is computed as the trace of sqrt(S C2 S) with S = C1^(1/2) (symmetric, so
    eigvalsh is stable even for the rank-deficient covariances of small sets).
    """
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu1, mu2 = a.mean(0), b.mean(0)
    c1 = np.atleast_2d(np.cov(a, rowvar=False)) + eps * np.eye(a.shape[1])
    c2 = np.atleast_2d(np.cov(b, rowvar=False)) + eps * np.eye(b.shape[1])
    w, v = np.linalg.eigh(c1)
    s = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    tr_sqrt = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(s @ c2 @ s), 0.0, None))))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt)


# ----------------------------------------------------------------------------- generators


@dataclass
class EvalOptions:
    # None: an exported cascade's own defaults (its manifest: what `n2m generate` uses); for
    # checkpoints, those `n2m export` writes by default (25 steps, guidance 3, dpmpp_2m)
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    vocoder_steps: int = 12
    max_seconds: float = 10.0
    seed: int = 0
    decoder: str | None = None  # exported cascades: "cascader" | "griffin-lim" (None = the model's)


class TorchCascade:
    """Checkpoints run in torch with the numpy samplers (exporter.models.pipeline)."""

    def __init__(self, generator: str | Path, vocoder: str | Path | None, opts: EvalOptions) -> None:
        from n2m.exporter.models.pipeline import GeneratorRunner, VocoderRunner, load_checkpoint
        from n2m.exporter.textenc import TextCache

        gen, ck = load_checkpoint(_ckpt_path(generator))
        if ck["stage"] != "generator":
            raise ValueError(f"{generator} is a {ck['stage']} checkpoint, expected the generator")
        self.gen = GeneratorRunner(gen, TextCache(max_tokens=int(ck.get("text_max_tokens", 40))))
        self.voc = None
        if vocoder is not None:
            voc, vk = load_checkpoint(_ckpt_path(vocoder))
            if vk["stage"] != "vocoder":
                raise ValueError(f"{vocoder} is a {vk['stage']} checkpoint, expected the vocoder")
            self.voc = VocoderRunner(voc)
        opts.steps = 25 if opts.steps is None else opts.steps
        opts.guidance = 3.0 if opts.guidance is None else opts.guidance
        opts.sampler = opts.sampler or "dpmpp_2m"
        self.opts = opts
        self.id = f"torch:{generator}+{vocoder or 'griffin-lim'}"

    def __call__(self, prompt: str, controls: Controls, seconds: float, seed: int) -> np.ndarray:
        from n2m.exporter.models.pipeline import SampleOptions, frames_for, griffin_lim

        o = self.opts
        frames = frames_for(seconds, self.gen.cfg.frame_multiple)
        mel = self.gen.generate(prompt, controls, frames, seed,
                                SampleOptions(steps=o.steps, guidance=o.guidance, sampler=o.sampler))
        if self.voc is None:
            audio = griffin_lim(mel)
        else:
            audio = self.voc.vocode(mel, seed=seed, steps=o.vocoder_steps, sampler=o.sampler)
        return audio[: int(round(seconds * SR))]


class OnnxCascade:
    """An exported cascade run by the runtime engine (n2m.bridge.engine)."""

    def __init__(self, model_dir: str | Path, opts: EvalOptions, threads: int | None,
                 precision: str | None = None) -> None:
        from n2m.bridge.engine import Engine

        self.engine = Engine.load(model_dir, provider="cpu", threads=threads, precision=precision)
        gen = self.engine.manifest.generator
        opts.steps = gen.default_steps if opts.steps is None else opts.steps
        opts.guidance = (gen.guidance.default if gen.guidance else 1.0) if opts.guidance is None else opts.guidance
        opts.sampler = opts.sampler or gen.default_sampler
        opts.decoder = opts.decoder or self.engine.manifest.default_decoder
        self.opts = opts  # resolved, so the report says what ran
        self.id = f"onnx:{model_dir}" + (f"+{opts.decoder}" if opts.decoder else "")
        if precision:
            used = sorted(set(self.engine.variants.values()))
            self.id += f"@{'/'.join(used)}"

    def __call__(self, prompt: str, controls: Controls, seconds: float, seed: int) -> np.ndarray:
        from dataclasses import replace

        from n2m.bridge.engine import Request

        c = replace(controls, bars=None, seconds=seconds).validated()
        clip = self.engine.generate(Request(prompt, c, seed, steps=self.opts.steps,
                                                      guidance=self.opts.guidance,
                                                      sampler=self.opts.sampler,
                                                      decoder=self.opts.decoder))[0]
        if clip.sample_rate != SR:
            import soxr

            return soxr.resample(clip.audio, clip.sample_rate, SR).astype(np.float32)
        return clip.audio


def _ckpt_path(p: str | Path) -> Path:
    p = Path(p)
    return p / "last.pt" if p.is_dir() else p


def open_model(model: str, vocoder: str | None, opts: EvalOptions, threads: int | None,
               precision: str | None = None):
    path = Path(model)
    if path.is_dir() and (path / "manifest.json").is_file():
        if vocoder == "griffin-lim":
            opts.decoder = "griffin-lim"
        elif vocoder:
            raise ValueError("an exported cascade brings its own vocoder: --vocoder takes only "
                             "'griffin-lim' with it (or use --decoder)")
        return OnnxCascade(path, opts, threads, precision)
    if precision:
        raise ValueError("--precision chooses among an exported cascade's graphs; give its folder")
    if "," in model:
        gen, voc = model.split(",", 1)
    elif path.is_dir() and (path / "generator.pt").is_file():
        gen, voc = str(path / "generator.pt"), str(path / "vocoder.pt")
    else:
        gen, voc = model, None
    if vocoder == "griffin-lim":
        voc = None
    elif vocoder:
        voc = vocoder
    for p in (gen, voc):
        if p is not None and not _ckpt_path(p).is_file():
            raise FileNotFoundError(f"{_ckpt_path(p)} not found")
    if voc is None and vocoder != "griffin-lim":
        raise ValueError("give the vocoder too: MODEL as GEN.pt,VOC.pt, or --vocoder PATH|griffin-lim")
    return TorchCascade(gen, voc, opts)


# ----------------------------------------------------------------------------- the evaluation


def prompt_controls(p: dict) -> Controls:
    def get(k):
        v = p.get(k)
        if v is None and isinstance(p.get("controls"), dict):
            v = p["controls"].get(k)
        return v

    bars = get("bars")
    return Controls(bpm=get("bpm"), key=get("key"), mode=get("mode"), meter=get("meter"),
                    bars=int(bars) if bars else None)


def _pca(train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    mu = train.mean(0)
    _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
    return mu, vt[:k].T


def prompt_subset(prompts: list[dict], n: int | None, tuning: bool = False) -> list[dict]:
    """The reported set: n prompts spread evenly over the file (it is grouped by style), or all;
    with `tuning`, the prompts that set leaves out."""
    if n and n < len(prompts):
        chosen = {int(i) for i in np.unique(np.linspace(0, len(prompts) - 1, n).round())}
        return [p for i, p in enumerate(prompts) if (i in chosen) != tuning]
    if tuning:
        raise ValueError("--tuning-set needs --n smaller than the number of evaluation prompts")
    return prompts


def evaluate(model, corpus: str | Path, classifier: str | Path, out: str | Path, n: int | None,
             opts: EvalOptions, log=print, held_out_of_n: bool = False) -> dict:
    """Generate for the evaluation prompts and measure. `n`: an evenly spread subset of n prompts
    (the reported set); `held_out_of_n`: the prompts that subset leaves out instead, for choosing
    settings (e.g. guidance) without looking at the reported set."""
    from n2m.exporter.classifier import ClipClassifier
    from n2m.exporter.corpus.reader import CorpusReader

    reader = CorpusReader(corpus)
    clf = ClipClassifier.load(classifier)
    prompts = reader.eval_prompts()
    if not prompts:
        raise ValueError(f"{corpus} has no eval_prompts.jsonl")
    prompts = prompt_subset(prompts, n, held_out_of_n)
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    styles = clf.cfg.styles
    spec = MelSpec()
    from n2m.exporter.eval_notes import NoteMeters
    from n2m.exporter.eval_notes import summarise as summarise_notes

    note_meters = NoteMeters(log)

    rows, gen_emb, mels = [], [], []
    t_start = time.monotonic()
    for i, p in enumerate(prompts):
        text = p.get("prompt") or p.get("text") or ""
        try:
            ctl = prompt_controls(p).validated()
        except ControlError:
            ctl = Controls()
        seconds = min(opts.max_seconds, ctl.duration(opts.max_seconds))
        t0 = time.monotonic()
        audio = np.asarray(model(text, ctl, seconds, opts.seed + i), dtype=np.float32)
        gen_s = time.monotonic() - t0
        row: dict = {"i": i, "prompt": text, "style": p.get("style"), "bpm": ctl.bpm, "key": ctl.key,
                     "mode": ctl.mode, "meter": ctl.meter, "seconds": seconds, "gen_seconds": gen_s}
        row["sanity"] = sanity(audio)
        safe = np.nan_to_num(audio)
        if ctl.bpm:
            row["measured_bpm"] = measure_tempo(safe)
            row["tempo"] = tempo_scores(ctl.bpm, row["measured_bpm"])
        if ctl.key:
            row["key_result"] = key_scores(ctl.key, ctl.mode, measure_key(safe, SR, bar_seconds(ctl.bpm, ctl.meter)))
            row.update(note_meters.clip(safe, SR, ctl.key, ctl.mode))
        mel = log_mel(safe, spec)
        a = clf.analyse_mel(mel)
        row["pred_style"] = styles[int(np.argmax(a["style_probs"]))]
        row["style_ok"] = row["pred_style"] == p.get("style")
        named = [x for x in (p.get("instruments") or []) if x in clf.cfg.instruments]
        if not p.get("instruments"):  # prompt sets without the field: names found in the text
            named = [inst for inst in clf.cfg.instruments if inst.lower() in text.lower()]
        if named:
            row["instruments"] = named
            row["instrument_ok"] = all(a["inst_probs"][clf.cfg.instruments.index(x)] > 0.5 for x in named)
        gen_emb.append(a["embedding"])
        if i < 8:
            mels.append((text, mel))
            import soundfile as sf

            sf.write(str(out / "audio" / f"{i:03d}.wav"), np.clip(safe, -1, 1), SR)
        rows.append(row)
        el = time.monotonic() - t_start
        log(f"eval {i + 1}/{len(prompts)} {gen_s:.1f}s/clip eta {el / (i + 1) * (len(prompts) - i - 1):.0f}s")

    # held-out references and the oracle run of the analysers
    held = reader.clips("test") + reader.clips("val")
    ref_emb, ref_style, oracle = [], [], {"tempo_octave": [], "tempo_strict": [], "key": [], "style": [],
                                          "instruments": []}
    oracle_notes = []
    for c in held:
        mel = reader.mel(c)
        f = 512
        for s in range(0, max(1, mel.shape[1] - f + 1), f):  # 10 s windows (or the whole clip)
            ref_emb.append(clf.analyse_mel(mel[:, s:s + f])["embedding"])
            ref_style.append(c["style"])
        audio = reader.audio16k(c)[: int(opts.max_seconds * SR)]
        if c.get("bpm"):
            ts = tempo_scores(float(c["bpm"]), measure_tempo(audio))
            oracle["tempo_octave"].append(ts["octave"])
            oracle["tempo_strict"].append(ts["strict"])
        if c.get("key"):
            bar = bar_seconds(c.get("bpm"), c.get("meter"))
            oracle["key"].append(key_scores(c["key"], c.get("mode"), measure_key(audio, SR, bar))["tonic_or_relative"])
            oracle_notes.append(note_meters.clip(audio, SR, c["key"], c.get("mode")))
        a = clf.analyse_mel(reader.mel(c))
        oracle["style"].append(styles[int(np.argmax(a["style_probs"]))] == c["style"])
        # the instruments an evaluation prompt may name: those of the chord and lead parts
        for role, inst in zip(c.get("roles") or [], c.get("instruments") or [], strict=False):
            if role in ("comp", "lead") and inst in clf.cfg.instruments:
                oracle["instruments"].append(bool(a["inst_probs"][clf.cfg.instruments.index(inst)] > 0.5))
    train_emb, train_style = [], []
    for c in reader.clips("train")[:300]:
        train_emb.append(clf.analyse_mel(reader.mel(c)[:, :512])["embedding"])
        train_style.append(c["style"])
    train_emb_a = np.array(train_emb)
    k = int(min(8, max(2, len(ref_emb) // 4)))
    mu, proj = _pca(train_emb_a, k)

    def P(x):
        return (np.asarray(x) - mu) @ proj

    style_mean = {s: P(train_emb_a[[t == s for t in train_style]]).mean(0) for s in set(train_style)}
    zero = np.zeros(k)

    def joint(emb, labels):
        return np.concatenate([P(emb), np.stack([style_mean.get(s, zero) for s in labels])], axis=1)

    gen_e, ref_e = np.array(gen_emb), np.array(ref_emb)
    gen_styles = [r["style"] for r in rows]
    rng = np.random.default_rng(opts.seed)
    shuffled = list(rng.permutation(gen_styles))
    half = np.arange(len(ref_e)) % 2 == 0
    ref_styles_a = np.array(ref_style)
    fd = {
        "dims": k, "generated": len(gen_e), "held_out_windows": len(ref_e),
        "fd_audio": frechet(P(gen_e), P(ref_e)),
        "fd_audio_floor": frechet(P(ref_e[half]), P(ref_e[~half])),
        "fjd": frechet(joint(gen_e, gen_styles), joint(ref_e, ref_style)),
        "fjd_shuffled_prompts": frechet(joint(gen_e, shuffled), joint(ref_e, ref_style)),
        "fjd_floor": frechet(joint(ref_e[half], ref_styles_a[half]), joint(ref_e[~half], ref_styles_a[~half])),
    }

    def frac(xs):
        xs = list(xs)
        return float(np.mean(xs)) if xs else None

    tempo_rows = [r for r in rows if "tempo" in r]
    key_rows = [r for r in rows if "key_result" in r]
    inst_rows = [r for r in rows if "instrument_ok" in r]
    summary = {
        "model": getattr(model, "id", str(model)), "corpus_id": reader.info.get("id"),
        "prompts": len(rows), "options": asdict(opts),
        "tempo": {"n": len(tempo_rows), "strict_4pct": frac(r["tempo"]["strict"] for r in tempo_rows),
                  "octave_4pct": frac(r["tempo"]["octave"] for r in tempo_rows),
                  "median_rel_error": float(np.median([r["tempo"]["rel_error"] for r in tempo_rows])) if tempo_rows else None},
        "key": {"n": len(key_rows), "tonic": frac(r["key_result"]["tonic"] for r in key_rows),
                "tonic_or_relative": frac(r["key_result"]["tonic_or_relative"] for r in key_rows)},
        "style": {"n": len(rows), "agreement": frac(r["style_ok"] for r in rows)},
        "instruments": {"n": len(inst_rows), "agreement": frac(r["instrument_ok"] for r in inst_rows)},
        "classifier": clf.info,
        "frechet": fd,
        "sanity": {k2: int(sum(r["sanity"][k2] for r in rows)) for k2 in ("nan", "clipping", "silence", "dc")},
        "notes": summarise_notes(key_rows),
        "oracle_held_out": {"clips": len(held), **{k2: frac(v) for k2, v in oracle.items()},
                            "notes": summarise_notes(oracle_notes)},
        "gen_seconds_per_clip": float(np.mean([r["gen_seconds"] for r in rows])),
        "targets": {"tempo_octave_4pct": 0.8, "key_tonic_or_relative": 0.6, "style_agreement": 0.6,
                    "fjd_over_shuffled": 0.5},
    }
    summary["fjd_over_shuffled"] = fd["fjd"] / fd["fjd_shuffled_prompts"] if fd["fjd_shuffled_prompts"] > 0 else None
    (out / "eval.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=_json))
    _plots(out, rows, styles, mels)
    (out / "report.md").write_text(_report(summary))
    return summary


def _json(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _fmt(x) -> str:
    return "n/a" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))


def _report(s: dict) -> str:
    from n2m.exporter.eval_notes import report_lines as note_report_lines

    fd, t = s["frechet"], s["targets"]
    lines = [
        f"# n2m evaluation: {s['model']}", "",
        f"Corpus {s['corpus_id']}, {s['prompts']} evaluation prompts, options {s['options']}.", "",
        "| measure | value | target | held-out renders (oracle) |", "|---|---|---|---|",
        f"| tempo within 4%, octave errors allowed (n={s['tempo']['n']}) | {_fmt(s['tempo']['octave_4pct'])} | "
        f">= {t['tempo_octave_4pct']} | {_fmt(s['oracle_held_out']['tempo_octave'])} |",
        f"| tempo within 4%, strict | {_fmt(s['tempo']['strict_4pct'])} | | {_fmt(s['oracle_held_out']['tempo_strict'])} |",
        f"| tempo median relative error | {_fmt(s['tempo']['median_rel_error'])} | | |",
        f"| key tonic or relative (n={s['key']['n']}) | {_fmt(s['key']['tonic_or_relative'])} | "
        f">= {t['key_tonic_or_relative']} | {_fmt(s['oracle_held_out']['key'])} |",
        f"| key tonic exact | {_fmt(s['key']['tonic'])} | | |",
        *note_report_lines(s),
        f"| style agreement (classifier) | {_fmt(s['style']['agreement'])} | >= {t['style_agreement']} | "
        f"{_fmt(s['oracle_held_out']['style'])} |",
        f"| instruments named in the prompt detected (n={s['instruments']['n']}) | {_fmt(s['instruments']['agreement'])} | | "
        f"{_fmt(s['oracle_held_out'].get('instruments'))} |",
        f"| FJD (prompt-aware Frechet) | {_fmt(fd['fjd'])} | <= 0.5 x shuffled | floor {_fmt(fd['fjd_floor'])} |",
        f"| FJD, shuffled prompts | {_fmt(fd['fjd_shuffled_prompts'])} | | |",
        f"| FJD / shuffled | {_fmt(s['fjd_over_shuffled'])} | <= {t['fjd_over_shuffled']} | |",
        f"| FD audio only vs held-out | {_fmt(fd['fd_audio'])} | | floor {_fmt(fd['fd_audio_floor'])} |",
        "",
        f"Classifier held-out: {json.dumps(s['classifier'].get('test'))}",
        f"Sanity failures (clips): {s['sanity']}. Generation: {s['gen_seconds_per_clip']:.1f} s per clip.",
        f"Frechet distances on {fd['dims']}-d PCA of classifier embeddings; {fd['generated']} generated clips, "
        f"{fd['held_out_windows']} held-out windows.", "",
        "Plots: confusion.png (requested vs classified style), tempo.png, spectrograms.png; audio/ has the first clips.",
    ]
    return "\n".join(lines) + "\n"


def _plots(out: Path, rows: list[dict], styles: list[str], mels: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = {s: i for i, s in enumerate(styles)}
    cm = np.zeros((len(styles), len(styles)), dtype=int)
    for r in rows:
        if r["style"] in idx:
            cm[idx[r["style"]], idx[r["pred_style"]]] += 1
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(styles)), styles, rotation=90, fontsize=7)
    ax.set_yticks(range(len(styles)), styles, fontsize=7)
    ax.set_xlabel("classified")
    ax.set_ylabel("requested")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=90)
    plt.close(fig)
    tr = [r for r in rows if "measured_bpm" in r]
    fig, ax = plt.subplots(figsize=(5, 5))
    if tr:
        req = [r["bpm"] for r in tr]
        ax.scatter(req, [r["measured_bpm"] for r in tr], s=10)
        xs = np.linspace(min(req), max(req), 10)
        for f in (1.0, 2.0, 0.5):
            ax.plot(xs, xs * f, "k--" if f == 1 else "k:", lw=0.7)
    ax.set_xlabel("requested bpm")
    ax.set_ylabel("measured bpm")
    fig.tight_layout()
    fig.savefig(out / "tempo.png", dpi=90)
    plt.close(fig)
    if mels:
        fig, axes = plt.subplots(len(mels), 1, figsize=(9, 1.8 * len(mels)), squeeze=False)
        for ax, (text, mel) in zip(axes[:, 0], mels, strict=True):
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(text[:90], fontsize=7)
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(out / "spectrograms.png", dpi=80)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="n2m eval", description="Evaluate a cascade on the evaluation prompt set.")
    p.add_argument("model", nargs="?",
                   help="ONNX cascade dir, or GEN.pt,VOC.pt (run dirs work), or a dir with generator.pt/vocoder.pt")
    p.add_argument("--vocoder", help="vocoder checkpoint or run dir, or 'griffin-lim'")
    p.add_argument("--corpus", default="corpus/v4")
    p.add_argument("--decoder", choices=["cascader", "griffin-lim"],
                   help="exported cascades: how log-mel becomes audio (default: the model's)")
    p.add_argument("--classifier", default="runs/classifier/classifier.pt")
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--n", type=int, help="evaluate N prompts spread evenly over the set (default all)")
    p.add_argument("--tuning-set", action="store_true",
                   help="evaluate the prompts the --n subset leaves out (to tune settings off the reported set)")
    p.add_argument("--steps", type=int, help="generator steps (default: the model's own, else 25)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the model's own, else 3)")
    p.add_argument("--sampler", choices=["ddim", "dpmpp_2m", "ancestral"],
                   help="generator sampler (default: the model's own, else dpmpp_2m)")
    p.add_argument("--vocoder-steps", type=int, default=12)
    p.add_argument("--max-seconds", type=float,
                   help="cap on each clip's length (default 10; --ceiling: the whole render)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=["fp32", "int8"],
                   help="exported cascades: which graphs run on the CPU (default fp32; int8 where exported)")
    p.add_argument("--superres", action="store_true",
                   help="measure only the 16 -> 48 kHz superres stage (MODEL: an exported cascade with one, or a "
                        "superres checkpoint) on held-out renders of a corpus built with --audio48k (--corpus)")
    p.add_argument("--superres-seconds", type=float, default=4.0, help="--superres: segment length per clip")
    p.add_argument("--ceiling", action="store_true",
                   help="measure MODEL's decoder alone and with an oracle generator on held-out renders "
                        "(--corpus, --n, default 60) instead of generating: ceiling.json/.md under --out")
    p.add_argument("--ceiling-spec", action="append", metavar="NAME",
                   help="also (or, without MODEL, only) measure a named front-end + Griffin-Lim on the same "
                        "renders: mel80_16k, mel192_44k_ms, mel192_44k_mono (repeat or comma-separate)")
    args = p.parse_args(argv)
    if args.ceiling_spec:
        args.ceiling_spec = [n.strip() for v in args.ceiling_spec for n in v.split(",") if n.strip()]
    if args.ceiling or args.ceiling_spec:
        from n2m.exporter.eval_ceiling import main_ceiling

        return main_ceiling(args)
    if not args.model:
        p.error("MODEL is required (only --ceiling-spec measures without one)")
    if args.max_seconds is None:
        args.max_seconds = 10.0
    if args.superres:
        return _main_superres(args)
    opts = EvalOptions(args.steps, args.guidance, args.sampler, args.vocoder_steps, args.max_seconds, args.seed,
                       decoder=args.decoder)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        model = open_model(args.model, args.vocoder, opts, args.threads, args.precision)
        summary = evaluate(model, args.corpus, args.classifier, args.out, args.n, opts,
                           log=lambda m: print(m, file=sys.stderr, flush=True), held_out_of_n=args.tuning_set)
    except (FileNotFoundError, ValueError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1, default=_json))
    print(f"report: {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


def _main_superres(args) -> int:
    from n2m.exporter.corpus.reader import CorpusError
    from n2m.exporter.eval_superres import evaluate_superres, open_superres

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ignored = [f for f, v in (("--precision", args.precision), ("--decoder", args.decoder),
                              ("--vocoder", args.vocoder), ("--tuning-set", args.tuning_set)) if v]
    if ignored:
        print(f"n2m eval: --superres measures only that stage; {', '.join(ignored)} does not apply",
              file=sys.stderr)
        return 2
    try:
        model = open_superres(args.model, args.threads)
        summary = evaluate_superres(model, args.corpus, args.out, args.n, args.superres_seconds, args.seed,
                                    log=lambda m: print(m, file=sys.stderr, flush=True))
    except (FileNotFoundError, ValueError, CorpusError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    print(f"report: {Path(args.out) / 'superres.md'}", file=sys.stderr)
    return 0


__all__ = ["evaluate", "main", "measure_key", "measure_tempo", "frechet", "sanity", "MODES"]
