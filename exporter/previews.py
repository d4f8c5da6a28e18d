"""Training previews: what a stage makes from its EMA weights every `sample_minutes`, written
under RUN_DIR/samples (WAV, and for generators the log-mel as .npy and a spectrogram PNG; for
cascaders a metric against the held-out reference in metrics.jsonl). A preview never stops a run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from n2m.bridge.controls import Controls, parse_controls
from n2m.bridge.features import COARSE, FINE
from n2m.exporter.data import AudioCascaderData, VocoderData
from n2m.exporter.models.pipeline import (
    AudioCascaderRunner,
    GeneratorRunner,
    SampleOptions,
    VocoderRunner,
    coarse_preview,
    frames_for,
    griffin_lim,
    load_checkpoint,
)
from n2m.exporter.trainlog import save_spectrogram


def write_previews(trainer) -> None:
    """The previews of the trainer's stage at its current step."""
    sdir = trainer.out / "samples"
    sdir.mkdir(parents=True, exist_ok=True)
    try:
        if trainer.stage == "generator":
            _generator(trainer, sdir)
        elif trainer.stage == "wavegen":
            _wavegen(trainer, sdir)
        elif trainer.stage == "spectral":
            return  # previews of the spectral cascader need the v2 decoder (not in the runtime yet)
        elif trainer.stage in ("cascader", "superres"):
            _audio_cascader(trainer, sdir)
        else:
            _vocoder(trainer, sdir)
    except Exception as exc:  # a preview must never kill a long run
        print(f"sample at step {trainer.step} failed: {exc!r}", file=sys.stderr, flush=True)


def _guided(trainer, runner, prompt: str, seed: int) -> np.ndarray:
    """One guided preview of a text-conditioned stage (generator: log-mel; wavegen: audio), its
    controls read from the prompt."""
    cfg = trainer.cfg
    ctl = parse_controls(prompt)
    frames = frames_for(cfg.sample_seconds, trainer.stage_cfg.frame_multiple)
    return runner.generate(prompt, Controls(bpm=ctl.bpm, key=ctl.key, mode=ctl.mode, meter=ctl.meter),
                           frames, seed=seed, opts=SampleOptions(steps=cfg.sample_steps, guidance=cfg.sample_guidance))


def _generator(trainer, sdir: Path) -> None:
    import soundfile as sf

    runner = GeneratorRunner(trainer.ema.model, trainer.text, trainer.schedule)
    vocoder = None
    voc_path = Path(trainer.cfg.sample_vocoder) if trainer.cfg.sample_vocoder else None
    if voc_path is not None and voc_path.is_dir():
        voc_path = voc_path / "last.pt"
    if voc_path is not None and voc_path.is_file():
        vocoder = VocoderRunner(load_checkpoint(voc_path)[0], trainer.schedule)
    for i, prompt in enumerate(trainer.cfg.sample_prompts):
        mel = _guided(trainer, runner, prompt, seed=i)
        stem = sdir / f"step{trainer.step:07d}_{i}"
        if trainer.stage_cfg.representation == "coarse":  # no cascader yet: the band above is silent
            audio, rate = coarse_preview(mel[:COARSE.n_bins]), FINE.sample_rate
        else:
            audio = griffin_lim(mel) if vocoder is None else np.clip(vocoder.vocode(mel, seed=i), -1, 1)
            rate = trainer.spec.sample_rate
        sf.write(str(stem) + ".wav", audio, rate)
        np.save(str(stem) + ".npy", mel.astype(np.float16))
        save_spectrogram(mel, str(stem) + ".png", prompt)


def _wavegen(trainer, sdir: Path) -> None:
    import soundfile as sf

    runner = GeneratorRunner(trainer.ema.model, trainer.text, trainer.schedule)
    for i, prompt in enumerate(trainer.cfg.sample_prompts):
        audio = _guided(trainer, runner, prompt, seed=i)
        sf.write(str(sdir / f"step{trainer.step:07d}_{i}.wav"), np.clip(audio, -1, 1), trainer.stage_cfg.sample_rate)


def _audio_cascader(trainer, sdir: Path) -> None:
    import soundfile as sf

    c = trainer.stage_cfg
    split = "val" if trainer.data.reader.clips("val") else "train"
    val = AudioCascaderData(trainer.data.reader, split, 250, c.stage, c.sample_rate, c.cond_rate, 1.0)
    cond, ref = val.example(np.random.default_rng(0))
    low = cond[:: c.up_factor]  # the upsampler keeps the low-rate samples on its grid
    audio = AudioCascaderRunner(trainer.ema.model, trainer.schedule).run(low, seed=0, steps=12)
    sf.write(str(sdir / f"step{trainer.step:07d}") + ".wav", np.clip(audio, -1, 1), c.sample_rate)
    err = float(np.sqrt(np.mean((audio - ref) ** 2)) / max(1e-9, np.sqrt(np.mean(ref ** 2))))
    with open(sdir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": trainer.step, "rel_rms_error_12_steps": err}) + "\n")
    if not (sdir / "reference.wav").exists():
        sf.write(str(sdir / "reference.wav"), ref, c.sample_rate)


def _vocoder(trainer, sdir: Path) -> None:
    import soundfile as sf

    from n2m.bridge.features import log_mel

    c, spec = trainer.stage_cfg, trainer.spec
    runner = VocoderRunner(trainer.ema.model, trainer.schedule)
    val = VocoderData(trainer.data.reader, "val" if trainer.data.reader.clips("val") else "train",
                      250, c.mel_mean, c.mel_scale, 1.0)
    mel_n, ref = val.example(np.random.default_rng(0))
    mel = mel_n * c.mel_scale + c.mel_mean
    audio = runner.vocode(mel, seed=0, steps=12)
    sf.write(str(sdir / f"step{trainer.step:07d}") + ".wav", np.clip(audio, -1, 1), spec.sample_rate)
    floor = np.log(spec.log_floor) + 0.5
    again = log_mel(np.nan_to_num(audio), spec)[:, : mel.shape[1]]
    l1 = float(np.abs(np.maximum(again, floor) - np.maximum(mel[:, : again.shape[1]], floor)).mean())
    with open(sdir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": trainer.step, "mel_l1_12_steps": l1}) + "\n")
    if not (sdir / "reference.wav").exists():
        sf.write(str(sdir / "reference.wav"), ref, spec.sample_rate)
