"""The decoders `n2m eval --ceiling` measures, one small adapter per representation.

A decoder is a callable ``(render [2, samples], sr, seed) -> Decoded``: it computes a
representation from a corpus render and turns it back into audio, timing only the way back
(what a generated clip would cost). Two families:

- named front-ends with Griffin-Lim alone (`SPECS`, `--ceiling-spec NAME`): the ceiling of a
  representation before any model is trained for it, e.g. "mel192_44k_ms" (the v2 cascade's 192-bin
  44.1 kHz mid/side mel);
- a model's own route (`model_decoders`): "decoder_alone" (the model's finest representation of the
  render -> its decoder) and "oracle_generator" (the render in the generator's output space -> every
  stage the engine runs after the generator). `ROUTE_ADAPTERS` maps a manifest's `route` to the
  function that builds both; a new route (the v2 cascade's coarse mel -> cascader -> fine mid/side
  mel -> Griffin-Lim) adds one entry there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from n2m.bridge.features import MelSpec, log_mel
from n2m.bridge.griffinlim import griffin_lim
from n2m.exporter.metrics.spectral import resample

GL_ITERS = 32  # as the engine's Griffin-Lim decoder


@dataclass
class Decoded:
    audio: np.ndarray  # float32 [channels, samples]
    sr: int
    seconds: float  # wall seconds of the decode alone (representation -> audio)


Decoder = Callable[[np.ndarray, int, int], Decoded]


def _layout(render: np.ndarray, layout: str) -> np.ndarray:
    """[channels, samples]: the mono mix, or mid and side ((L+R)/2, (L-R)/2)."""
    x = np.asarray(render, dtype=np.float32)
    x = x[None] if x.ndim == 1 else x
    if layout == "mono":
        return x.mean(axis=0, keepdims=True)
    if layout == "mid_side":
        left, right = (x[0], x[1]) if x.shape[0] == 2 else (x[0], x[0])
        return np.stack([(left + right) / 2, (left - right) / 2])
    raise ValueError(f"unknown channel layout {layout!r}: mono or mid_side")


def _unlayout(channels: np.ndarray, layout: str) -> np.ndarray:
    if layout == "mid_side":
        mid, side = channels
        return np.stack([mid + side, mid - side])
    return channels


@dataclass(frozen=True)
class MelGriffinLim:
    """Log-mel per channel (mono mix, or mid and side) at spec.sample_rate, back to audio by
    Griffin-Lim per channel (bridge.griffinlim, one thread)."""

    spec: MelSpec
    layout: str = "mono"
    n_iter: int = GL_ITERS

    def encode(self, render: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
        """([channels, n_mels, frames] log-mel, samples per channel at spec.sample_rate)."""
        chans = [resample(c, sr, self.spec.sample_rate) for c in _layout(render, self.layout)]
        return np.stack([log_mel(c, self.spec) for c in chans]), len(chans[0])

    def decode(self, mels: np.ndarray, length: int, seed: int) -> Decoded:
        t0 = time.perf_counter()
        chans = np.stack([griffin_lim(m, self.spec, n_iter=self.n_iter, seed=seed + i, length=length)
                          for i, m in enumerate(mels)])
        audio = _unlayout(chans, self.layout).astype(np.float32)
        return Decoded(audio, self.spec.sample_rate, time.perf_counter() - t0)

    def __call__(self, render: np.ndarray, sr: int, seed: int) -> Decoded:
        mels, length = self.encode(render, sr)
        return self.decode(mels, length, seed)


SPECS: dict[str, MelGriffinLim] = {
    # the shipped model's front-end: 80-bin Slaney mel to 8 kHz, 16 kHz mono, n_fft 1024, hop 320
    "mel80_16k": MelGriffinLim(MelSpec()),
    # the v2 cascade's fine representation: 192 bins from 30 Hz, 44.1 kHz, n_fft 2048, hop 441
    # (100 frames/s), mid and side
    "mel192_44k_ms": MelGriffinLim(MelSpec(sample_rate=44100, n_fft=2048, hop=441, n_mels=192, fmin=30.0,
                                           fmax=22050.0), layout="mid_side"),
    "mel192_44k_mono": MelGriffinLim(MelSpec(sample_rate=44100, n_fft=2048, hop=441, n_mels=192, fmin=30.0,
                                             fmax=22050.0)),
}


def spec_decoder(name: str) -> MelGriffinLim:
    if name not in SPECS:
        raise ValueError(f"unknown --ceiling-spec {name!r}: one of {', '.join(SPECS)}")
    return SPECS[name]


# ----------------------------------------------------------------------------- model routes


def model_decoders(model_dir: str | Path, decoder: str | None = None,
                   threads: int | None = None) -> dict[str, Decoder]:
    """{"decoder_alone", "oracle_generator"} for an exported cascade, by its manifest's route.
    `decoder`: "griffin-lim" or the vocoder stage, "vocoder" (default: the manifest's default_decoder)."""
    from n2m.bridge.manifest import Manifest

    man = Manifest.load(model_dir)
    build = ROUTE_ADAPTERS.get(man.route)
    if build is None:
        raise ValueError(f"{model_dir}: --ceiling has no adapter for route {man.route!r} yet "
                         f"(known: {', '.join(ROUTE_ADAPTERS)})")
    return build(Path(model_dir), man, decoder or man.default_decoder, threads)


class _MelRoute:
    """The mel route: 80-bin log-mel -> Griffin-Lim or the diffusion vocoder [-> superres]."""

    def __init__(self, model_dir: Path, man, decoder: str, threads: int | None) -> None:
        self.front = MelGriffinLim(MelSpec(**man.mel))
        self.decoder = decoder
        self.mel_max = man.mel_max
        self.floor = float(np.log(man.mel.get("log_floor", 1e-5)))
        self.engine = None
        if decoder != "griffin-lim" or man.superres is not None:
            from n2m.bridge.engine import Engine

            self.engine = Engine.load(model_dir, provider="cpu", threads=threads)
        self.superres = man.superres is not None

    def _decode(self, mel: np.ndarray, length: int, seed: int) -> np.ndarray:
        """[80, frames] log-mel -> [samples] 16 kHz audio by the chosen decoder."""
        if self.decoder == "griffin-lim":
            return griffin_lim(mel, self.front.spec, n_iter=GL_ITERS, seed=seed, length=length)
        from n2m.bridge.cascade import per_frame, sample_vocoder

        eng = self.engine
        man = eng.manifest
        samples = mel.shape[1] * per_frame(man, man.cascader)
        audio = sample_vocoder(eng.cascade.stages["vocoder"], man.vocoder, mel[None], [seed], samples,
                               int(man.vocoder.default_steps))
        return audio[0, :length]

    def decoder_alone(self, render: np.ndarray, sr: int, seed: int) -> Decoded:
        mels, length = self.front.encode(render, sr)
        t0 = time.perf_counter()
        audio = self._decode(mels[0], length, seed)
        return Decoded(audio[None].astype(np.float32), self.front.spec.sample_rate, time.perf_counter() - t0)

    def oracle_generator(self, render: np.ndarray, sr: int, seed: int) -> Decoded:
        """The render's log-mel as the generator would hand it on: clamped to the corpus' range
        (the engine's mel_max), decoded, then super-resolved when the cascade has that stage."""
        mels, length = self.front.encode(render, sr)
        mel = mels[0] if self.mel_max is None else np.clip(mels[0], self.floor, float(self.mel_max))
        t0 = time.perf_counter()
        audio = self._decode(mel, length, seed)
        rate = self.front.spec.sample_rate
        if self.superres:
            hop = int(round(self.engine.manifest.superres.cond_rate / self.engine.manifest.frame_rate))
            audio = np.pad(audio, (0, -len(audio) % hop))
            audio = self.engine.superres(audio[None].astype(np.float32), [seed])[0]
            rate = int(self.engine.sample_rate)
        return Decoded(audio[None].astype(np.float32), rate, time.perf_counter() - t0)


def _mel_route(model_dir: Path, man, decoder: str, threads: int | None) -> dict[str, Decoder]:
    route = _MelRoute(model_dir, man, decoder, threads)
    return {"decoder_alone": route.decoder_alone, "oracle_generator": route.oracle_generator}


class _FineRoute:
    """The fine route: the render's FINE mid/side mel -> Griffin-Lim (decoder alone), and its COARSE
    mel -> the spectral cascader -> Griffin-Lim (oracle generator), as the engine runs them."""

    def __init__(self, model_dir: Path, man, threads: int | None) -> None:
        from n2m.bridge.engine import Engine
        from n2m.bridge.features import CoarseSpec

        self.engine = Engine.load(model_dir, provider="cpu", threads=threads)
        self.front = MelGriffinLim(MelSpec(**man.mel), layout="mid_side")
        self.coarse = CoarseSpec.from_dict(man.coarse)
        self.man = man

    def _stereo(self, fine: np.ndarray, coarse: np.ndarray | None, length: int, seed: int) -> np.ndarray:
        from n2m.bridge.spectral import decode_fine

        return decode_fine(fine[None], None if coarse is None else coarse[None], self.front.spec, self.coarse,
                           [seed], length, self.engine.threads, self.man.mel_max)[0]

    def decoder_alone(self, render: np.ndarray, sr: int, seed: int) -> Decoded:
        fine, length = self.front.encode(render, sr)
        t0 = time.perf_counter()
        audio = self._stereo(fine, None, length, seed)
        return Decoded(audio, self.front.spec.sample_rate, time.perf_counter() - t0)

    def oracle_generator(self, render: np.ndarray, sr: int, seed: int) -> Decoded:
        """The render's COARSE mel (clamped to the corpus' range; and side bands where the generator
        makes them) through the spectral stage with the manifest's steps, the crossover, and
        Griffin-Lim; unconditioned text (no prompt)."""
        from n2m.bridge.controls import Controls
        from n2m.bridge.features import coarse_rows
        from n2m.bridge.spectral import SPECTRAL, sample_spectral

        fine, length = self.front.encode(render, sr)
        coarse = coarse_rows(fine, self.coarse)
        if self.man.mel_max is not None:
            b = self.coarse.n_bins
            coarse[:b] = np.clip(coarse[:b], float(np.log(self.coarse.log_floor)), float(self.man.mel_max))
        m = self.man.frame_multiple
        pad = -coarse.shape[1] % m
        coarse_p = np.pad(coarse, ((0, 0), (0, pad)), mode="edge")
        eng, spec = self.engine, self.man.stages[SPECTRAL]
        t0 = time.perf_counter()
        states, mask = eng._encode(["", ""])
        out = sample_spectral(eng.cascade.stages[SPECTRAL], spec, coarse_p[None, :self.coarse.n_bins],
                              states.astype(np.float32), mask.astype(np.float32), Controls(), [seed],
                              int(spec.default_steps), self.coarse.pool)
        audio = self._stereo(out[0], coarse_p, length, seed)
        return Decoded(audio, self.front.spec.sample_rate, time.perf_counter() - t0)


def _fine_route(model_dir: Path, man, decoder: str, threads: int | None) -> dict[str, Decoder]:
    route = _FineRoute(model_dir, man, threads)
    return {"decoder_alone": route.decoder_alone, "oracle_generator": route.oracle_generator}


ROUTE_ADAPTERS: dict[str, Callable[..., dict[str, Decoder]]] = {"mel": _mel_route, "fine": _fine_route}
