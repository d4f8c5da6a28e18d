"""The classifier meters of `n2m eval`: style and instrument agreement of each generated clip, the
same on held-out renders against their labels (the oracle), and Frechet distances (FD, FJD) of the
classifier's embeddings with their floors and the shuffled-prompt reference.

The old meter (`--classifier`, the mel80 classifier) takes each clip's 16 kHz mono mix, as it always
has; the new meter (`--classifier-v2`, e.g. the coarse classifier) takes the model's native output
(rate and channels as made). Each analyses held-out renders in its own cached representation. The
old meter's results stay where earlier reports had them (summary "style", "instruments",
"classifier", "frechet"); the new one's go under "new_meter", and the report sets them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from n2m.exporter.eval_models import EvalClip
from n2m.exporter.metrics.adherence import SR, frechet

WINDOW = 512  # frames of the held-out windows (and training renders) embedded for the distances: 10.24 s
TRAIN_REFERENCE = 300  # training renders the PCA space is fitted on
NEW_KEY = "new_meter"  # where the new meter's fields live in rows and in the summary


@dataclass
class HeldOut:
    """The held-out renders through one meter: window embeddings and styles, and the oracle."""

    emb: list = field(default_factory=list)
    styles: list = field(default_factory=list)
    style_ok: list = field(default_factory=list)
    instruments_ok: list = field(default_factory=list)


@dataclass
class Meter:
    """A trained classifier as an evaluation meter: `native` feeds it the model's own output,
    otherwise the 16 kHz mono mix; `key` is where its row fields go (None: the row itself)."""

    label: str
    clf: object  # exporter.metrics.style.ClipClassifier
    native: bool
    key: str | None = None

    @classmethod
    def load(cls, path: str | Path, label: str, native: bool, key: str | None = None) -> Meter:
        from n2m.exporter.metrics.style import ClipClassifier

        return cls(label, ClipClassifier.load(path), native, key)

    @property
    def describe(self) -> str:
        return f"{self.clf.representation} on the {'native output' if self.native else '16 kHz mono mix'}"

    def clip(self, clip: EvalClip, p: dict, text: str) -> tuple[dict, np.ndarray]:
        """(row fields: pred_style, style_ok, and instruments/instrument_ok where the prompt names
        instruments the classifier knows; the clip's embedding)."""
        audio, sr = (clip.native, clip.rate) if self.native else (clip.audio16k, SR)
        a = self.clf.analyse_audio(np.nan_to_num(audio), sr)
        styles, instruments = self.clf.cfg.styles, self.clf.cfg.instruments
        fields: dict = {"pred_style": styles[int(np.argmax(a["style_probs"]))]}
        fields["style_ok"] = fields["pred_style"] == p.get("style")
        named = [x for x in (p.get("instruments") or []) if x in instruments]
        if not p.get("instruments"):  # prompt sets without the field: names found in the text
            named = [inst for inst in instruments if inst.lower() in text.lower()]
        if named:
            fields["instruments"] = named
            fields["instrument_ok"] = all(a["inst_probs"][instruments.index(x)] > 0.5 for x in named)
        return fields, a["embedding"]

    def fields(self, row: dict) -> dict:
        return row if self.key is None else row.get(self.key, {})

    def held_out(self, reader, held: list[dict]) -> HeldOut:
        """Embeddings of the held-out renders' 10 s windows (or whole clips), and the classifier run
        on each whole render against its labels."""
        styles, instruments = self.clf.cfg.styles, self.clf.cfg.instruments
        h = HeldOut()
        for c in held:
            mel = self.clf.corpus_mel(reader, c)
            for s in range(0, max(1, mel.shape[1] - WINDOW + 1), WINDOW):
                h.emb.append(self.clf.analyse_mel(mel[:, s:s + WINDOW])["embedding"])
                h.styles.append(c["style"])
            a = self.clf.analyse_mel(mel)
            h.style_ok.append(styles[int(np.argmax(a["style_probs"]))] == c["style"])
            # the instruments an evaluation prompt may name: those of the chord and lead parts
            for role, inst in zip(c.get("roles") or [], c.get("instruments") or [], strict=False):
                if role in ("comp", "lead") and inst in instruments:
                    h.instruments_ok.append(bool(a["inst_probs"][instruments.index(inst)] > 0.5))
        return h

    def frechet(self, reader, gen_e: np.ndarray, gen_styles: list, held: HeldOut, seed: int) -> dict:
        """FD (audio only) and the prompt-aware FJD of the generated clips against the held-out
        windows, with their floors (held-out against held-out) and the shuffled-prompt reference, in
        a PCA space fitted on training renders."""
        train_emb, train_style = [], []
        for c in reader.clips("train")[:TRAIN_REFERENCE]:
            train_emb.append(self.clf.analyse_mel(self.clf.corpus_mel(reader, c)[:, :WINDOW])["embedding"])
            train_style.append(c["style"])
        return frechet_distances(np.array(train_emb), train_style, np.asarray(gen_e), gen_styles,
                                 np.array(held.emb), held.styles, seed)

    def summary(self, rows: list[dict], fd: dict, held: HeldOut) -> dict:
        fields = [self.fields(r) for r in rows]
        inst = [f for f in fields if "instrument_ok" in f]
        return {
            "label": self.label, "meter": self.describe, "classifier": self.clf.info,
            "style": {"n": len(fields), "agreement": _frac(f["style_ok"] for f in fields)},
            "instruments": {"n": len(inst), "agreement": _frac(f["instrument_ok"] for f in inst)},
            "frechet": fd,
            "fjd_over_shuffled": fd["fjd"] / fd["fjd_shuffled_prompts"] if fd["fjd_shuffled_prompts"] > 0 else None,
            "oracle_held_out": {"style": _frac(held.style_ok), "instruments": _frac(held.instruments_ok)},
        }


def _frac(xs) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def _pca(train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    mu = train.mean(0)
    _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
    return mu, vt[:k].T


def frechet_distances(train_a: np.ndarray, train_style: list, gen_e: np.ndarray, gen_styles: list,
                      ref_e: np.ndarray, ref_style: list, seed: int) -> dict:
    """The distances of `Meter.frechet` from embeddings: training renders (the PCA space and each
    style's mean), generated clips and held-out windows, each with its styles."""
    k = int(min(8, max(2, len(ref_e) // 4)))
    mu, proj = _pca(train_a, k)

    def proj_(x):
        return (np.asarray(x) - mu) @ proj

    style_mean = {s: proj_(train_a[[t == s for t in train_style]]).mean(0) for s in set(train_style)}
    zero = np.zeros(k)

    def joint(emb, labels):
        return np.concatenate([proj_(emb), np.stack([style_mean.get(s, zero) for s in labels])], axis=1)

    shuffled = list(np.random.default_rng(seed).permutation(gen_styles))
    half = np.arange(len(ref_e)) % 2 == 0
    ref_styles_a = np.array(ref_style)
    return {
        "dims": k, "generated": len(gen_e), "held_out_windows": len(ref_e),
        "fd_audio": frechet(proj_(gen_e), proj_(ref_e)),
        "fd_audio_floor": frechet(proj_(ref_e[half]), proj_(ref_e[~half])),
        "fjd": frechet(joint(gen_e, gen_styles), joint(ref_e, ref_style)),
        "fjd_shuffled_prompts": frechet(joint(gen_e, shuffled), joint(ref_e, ref_style)),
        "fjd_floor": frechet(joint(ref_e[half], ref_styles_a[half]), joint(ref_e[~half], ref_styles_a[~half])),
    }


def _f(x) -> str:
    return "n/a" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))


def side_by_side_lines(s: dict) -> list[str]:
    """The report's table of the old and the new meter, measure by measure (summary with NEW_KEY)."""
    old = {"meter": s.get("meters", {}).get("old"), "classifier": s["classifier"], "style": s["style"],
           "instruments": s["instruments"], "frechet": s["frechet"], "fjd_over_shuffled": s["fjd_over_shuffled"],
           "oracle_held_out": {k: s["oracle_held_out"].get(k) for k in ("style", "instruments")}}
    new, t = s[NEW_KEY], s["targets"]

    def row(name, get, target=""):
        return f"| {name} | {_f(get(old))} | {_f(get(new))} | {target} |"

    def acc(m):
        return (m["classifier"].get("test") or {}).get("style_accuracy")

    return [
        "", "Classifier meters side by side: old = the mel80 classifier on each clip's 16 kHz mono mix, "
        "new = the v2 classifier on the model's native output.", "",
        f"| classifier measure | old ({old['meter']}) | new ({new['meter']}) | target |", "|---|---|---|---|",
        row("style agreement", lambda m: m["style"]["agreement"], f">= {t['style_agreement']}"),
        row("style agreement, held-out renders (oracle)", lambda m: m["oracle_held_out"]["style"]),
        row(f"instruments named in the prompt detected (n={s['instruments']['n']})",
            lambda m: m["instruments"]["agreement"]),
        row("instruments, held-out renders (oracle)", lambda m: m["oracle_held_out"]["instruments"]),
        row("FJD (prompt-aware Frechet)", lambda m: m["frechet"]["fjd"], "<= 0.5 x shuffled"),
        row("FJD floor (held-out vs held-out)", lambda m: m["frechet"]["fjd_floor"]),
        row("FJD, shuffled prompts", lambda m: m["frechet"]["fjd_shuffled_prompts"]),
        row("FJD / shuffled", lambda m: m["fjd_over_shuffled"], f"<= {t['fjd_over_shuffled']}"),
        row("FD audio only vs held-out", lambda m: m["frechet"]["fd_audio"]),
        row("FD floor", lambda m: m["frechet"]["fd_audio_floor"]),
        row("classifier's own held-out style accuracy (test split)", acc),
    ]
