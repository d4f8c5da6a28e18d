"""An audio classifier trained on the corpus: style (single label) and instruments (multi-label).

A small 2D CNN over a log-mel representation (bridge.features, normalised), trained on random
~5 s crops. Its pooled penultimate layer is the embedding `n2m eval` uses for Frechet distances; its
style head measures style adherence. Held-out accuracy on the corpus' test split is stored in the
checkpoint. Two representations, both 50 frames/s:
- "mel80" (the default, and what checkpoints without the field hold): the 80-bin 16 kHz mono mel;
- "coarse": the COARSE mel (the mid of 44.1 kHz stereo, or the mono signal, bins up to 8 kHz),
  what the v2 generator makes; trained on corpora that cache it.

    python -m n2m.exporter.metrics.style --corpus corpus/v2 --out runs/classifier_mel80 [--steps N]
    python -m n2m.exporter.metrics.style --corpus corpus/v2 --out runs/classifier_coarse --representation coarse
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from n2m.bridge.features import COARSE, FINE, MelSpec, coarse_mel, log_mel
from n2m.exporter.corpus.reader import CorpusError, CorpusReader

# representation -> (bins, normalisation mean, scale): the normalised values span about -1.4..1.6
# (mel80 log-mels lie in about -11.5..6.7, COARSE ones in -11.5..8.4 with a higher median)
REPRESENTATIONS: dict[str, tuple[int, float, float]] = {"mel80": (MelSpec().n_mels, -4.5, 7.0),
                                                        "coarse": (COARSE.n_bins, -1.5, 7.0)}
LOG_FLOOR = float(np.log(MelSpec().log_floor))  # both representations floor power at 1e-5


@dataclass
class ClassifierConfig:
    styles: list[str]
    instruments: list[str]
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    crop_frames: int = 256
    mel_mean: float = -4.5
    mel_scale: float = 7.0
    extra: dict = field(default_factory=dict)
    representation: str = "mel80"


def audio_features(audio: np.ndarray, sr: int, representation: str = "mel80") -> np.ndarray:
    """[bins, frames] log-mel of mono [n] or [channels, n] audio in the classifier's representation:
    mel80 of the mono mix at 16 kHz, or COARSE of the mid ((L+R)/2, the mono mix) at 44.1 kHz."""
    from n2m.exporter.metrics.spectral import mono, resample

    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}: one of {', '.join(REPRESENTATIONS)}")
    x = mono(audio)
    if representation == "mel80":
        return log_mel(resample(x, sr, MelSpec().sample_rate), MelSpec())
    return coarse_mel(log_mel(resample(x, sr, FINE.sample_rate), FINE))


def corpus_features(reader: CorpusReader, clip: dict, representation: str = "mel80") -> np.ndarray:
    """The corpus' cached log-mel of a clip in the given representation."""
    return reader.coarse(clip) if representation == "coarse" else reader.mel(clip)


class AudioClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # a strided stem, then conv + pool blocks: cheap enough to train on one CPU thread
        layers: list[nn.Module] = [nn.Conv2d(1, cfg.channels[0], 5, stride=2, padding=2),
                                   nn.BatchNorm2d(cfg.channels[0]), nn.ReLU()]
        c_in = cfg.channels[0]
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.embed = nn.Linear(c_in, cfg.embed_dim)
        self.style_head = nn.Linear(cfg.embed_dim, len(cfg.styles))
        self.inst_head = nn.Linear(cfg.embed_dim, max(1, len(cfg.instruments)))

    def embedding(self, mel_norm: torch.Tensor) -> torch.Tensor:
        """[B, bins, T] normalised log-mel -> [B, embed_dim]."""
        h = self.features(mel_norm[:, None])
        h = h.mean(dim=(2, 3))
        return F.relu(self.embed(h))

    def forward(self, mel_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.embedding(mel_norm)
        return self.style_head(e), self.inst_head(e), e


class ClipClassifier:
    """A trained classifier applied to whole clips (log-mel in its representation, or audio): crops
    averaged."""

    def __init__(self, model: AudioClassifier, info: dict | None = None) -> None:
        self.model = model.eval()
        self.cfg = model.cfg
        self.info = info or {}

    @classmethod
    def load(cls, path: str | Path) -> ClipClassifier:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"classifier {path} not found: train one with "
                f"`python -m n2m.exporter.metrics.style --corpus DIR --out {path.parent}` (add `--representation "
                f"coarse` for the v2 meter)")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = ClassifierConfig(**ckpt["config"])
        model = AudioClassifier(cfg)
        model.load_state_dict(ckpt["model"])
        return cls(model, ckpt.get("info", {}))

    @property
    def representation(self) -> str:
        return self.cfg.representation

    def _crops(self, mel: np.ndarray) -> torch.Tensor:
        f = self.cfg.crop_frames
        bins = REPRESENTATIONS[self.cfg.representation][0]
        if mel.shape[0] != bins:
            raise ValueError(f"the {self.cfg.representation} classifier takes {bins} bins, got {mel.shape[0]}")
        norm = (mel - self.cfg.mel_mean) / self.cfg.mel_scale
        if norm.shape[1] < f:
            pad = np.full((norm.shape[0], f - norm.shape[1]), (LOG_FLOOR - self.cfg.mel_mean) / self.cfg.mel_scale)
            norm = np.concatenate([norm, pad], axis=1)
        n = norm.shape[1]
        starts = sorted({0, max(0, n - f), *range(0, max(1, n - f + 1), f // 2)})
        return torch.from_numpy(np.stack([norm[:, s:s + f] for s in starts]).astype(np.float32))

    @torch.no_grad()
    def analyse_mel(self, mel: np.ndarray) -> dict:
        """{"style_probs", "inst_probs", "embedding"} averaged over the clip's crops."""
        s, i, e = self.model(self._crops(mel))
        return {"style_probs": torch.softmax(s, -1).mean(0).numpy(),
                "inst_probs": torch.sigmoid(i).mean(0).numpy(), "embedding": e.mean(0).numpy()}

    def analyse_audio(self, audio: np.ndarray, sr: int = 16000) -> dict:
        """analyse_mel of mono or [channels, n] audio at `sr`, in the classifier's representation."""
        return self.analyse_mel(audio_features(audio, sr, self.cfg.representation))

    def corpus_mel(self, reader: CorpusReader, clip: dict) -> np.ndarray:
        """The corpus' cached log-mel of a clip in this classifier's representation."""
        return corpus_features(reader, clip, self.cfg.representation)


def _labels(reader: CorpusReader) -> tuple[list[str], list[str]]:
    clips = reader.clips()
    styles = reader.styles or sorted({c["style"] for c in clips})
    insts = sorted({i for c in clips for i in (c.get("instruments") or [])})
    return list(styles), insts


def _batch(reader: CorpusReader, clips: list[dict], cfg: ClassifierConfig, rng: np.random.Generator,
           n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mels, ys, yi = [], [], []
    for _ in range(n):
        c = clips[int(rng.integers(len(clips)))]
        mel = corpus_features(reader, c, cfg.representation)
        f = cfg.crop_frames
        if mel.shape[1] >= f:
            s = int(rng.integers(0, mel.shape[1] - f + 1))
            crop = mel[:, s:s + f]
        else:
            crop = np.full((mel.shape[0], f), LOG_FLOOR, dtype=np.float32)
            crop[:, :mel.shape[1]] = mel
        crop = crop + rng.uniform(-1.0, 1.0)  # gain augmentation (+-~9 dB)
        mels.append((crop - cfg.mel_mean) / cfg.mel_scale)
        ys.append(cfg.styles.index(c["style"]))
        multi = np.zeros(max(1, len(cfg.instruments)), dtype=np.float32)
        for i in c.get("instruments") or []:
            if i in cfg.instruments:
                multi[cfg.instruments.index(i)] = 1.0
        yi.append(multi)
    return (torch.from_numpy(np.stack(mels).astype(np.float32)), torch.tensor(ys),
            torch.from_numpy(np.stack(yi)))


@torch.no_grad()
def held_out_metrics(clf: ClipClassifier, reader: CorpusReader, split: str = "test",
                     limit: int | None = None) -> dict:
    clips = reader.clips(split)[:limit] if limit else reader.clips(split)
    if not clips:
        return {"split": split, "clips": 0}
    correct, tp, fp, fn = 0, 0, 0, 0
    for c in clips:
        out = clf.analyse_mel(clf.corpus_mel(reader, c))
        correct += int(clf.cfg.styles[int(np.argmax(out["style_probs"]))] == c["style"])
        pred = {clf.cfg.instruments[i] for i in np.flatnonzero(out["inst_probs"] > 0.5)}
        true = set(c.get("instruments") or [])
        tp, fp, fn = tp + len(pred & true), fp + len(pred - true), fn + len(true - pred)
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    return {"split": split, "clips": len(clips), "style_accuracy": correct / len(clips), "instrument_f1": f1}


def train_classifier(corpus: str | Path, out: str | Path, steps: int = 4000, batch: int = 24,
                     lr: float = 1e-3, seed: int = 0, threads: int = 1, log=print,
                     representation: str = "mel80") -> dict:
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}: one of {', '.join(REPRESENTATIONS)}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    reader = CorpusReader(corpus)
    styles, insts = _labels(reader)
    train = reader.clips("train")
    if not train:
        raise CorpusError(f"corpus {corpus} has no train clips")
    if representation == "coarse" and not reader.has_fine:
        raise CorpusError(f"{corpus} caches no COARSE mels, which the coarse classifier trains on. Fix: build "
                          f"a 44.1 kHz corpus (`n2m corpus build --out DIR --hours H --seed S`) or use mel80")
    _, mean, scale = REPRESENTATIONS[representation]
    cfg = ClassifierConfig(styles=styles, instruments=insts, mel_mean=mean, mel_scale=scale,
                           representation=representation)
    model = AudioClassifier(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    for step in range(1, steps + 1):
        model.train()
        x, ys, yi = _batch(reader, train, cfg, rng, batch)
        s, i, _ = model(x)
        loss = F.cross_entropy(s, ys) + F.binary_cross_entropy_with_logits(i, yi)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            acc = float((s.argmax(-1) == ys).float().mean())
            rate = step / (time.monotonic() - t0)
            log(f"classifier step {step}/{steps} loss {float(loss.detach()):.3f} batch acc {acc:.2f} "
                f"{rate:.1f} steps/s eta {(steps - step) / rate:.0f}s")
    train_seconds = time.monotonic() - t0
    clf = ClipClassifier(model)
    info = {"corpus_id": reader.info.get("id"), "representation": representation, "steps": steps,
            "batch": batch, "threads": threads, "train_seconds": round(train_seconds, 1),
            "test": held_out_metrics(clf, reader, "test"), "val": held_out_metrics(clf, reader, "val")}
    path = out / "classifier.pt"
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": asdict(cfg), "model": model.state_dict(), "info": info}, tmp)
    os.replace(tmp, path)
    (out / "classifier.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m n2m.exporter.metrics.style",
                                description="Train the evaluation audio classifier on a corpus.")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--representation", choices=sorted(REPRESENTATIONS), default="mel80",
                   help="mel80: the 80-bin 16 kHz mel (the old meter); coarse: the COARSE mel of the v2 route")
    args = p.parse_args(argv)
    try:
        info = train_classifier(args.corpus, args.out, args.steps, args.batch, threads=args.threads,
                                representation=args.representation)
    except CorpusError as exc:
        print(f"classifier: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
