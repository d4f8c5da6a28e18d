"""Log-mel to audio without a network: fast Griffin-Lim in numpy (runtime side, no librosa).

The log-mel is mapped back to a linear magnitude spectrogram by non-negative least squares against
the mel filterbank (projected gradient from the pseudo-inverse), and a phase is found by the fast
Griffin-Lim algorithm (Perraudin et al. 2013, momentum 0.99) with the same centred, periodic-Hann
STFT that `features.log_mel` uses, so that ``log_mel(griffin_lim(m))`` comes back close to ``m``.
Deterministic for a seed (the initial phase), whatever the number of threads: numpy's FFTs run
on one thread each but release the GIL, so threads can share one pass's frames (`workers`).

One pass per iteration takes each chunk of frames from audio to spectrum (momentum step, magnitude
swap) and straight back to windowed frames, in buffers allocated once per call: a fresh
multi-megabyte array per operation costs more in page faults than the FFTs themselves.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from n2m.bridge.features import MelSpec, mel_filterbank

_BELOW = (0.5, 0.1)  # the bins under the lowest filter, 1 and 2 bins down: the window's leakage
_BAND = 128  # STFT bins per block of the banded filterbank
_DENSE_ABOVE = 0.2  # blocks holding more than this share of the dense products: one dense block


@dataclass(frozen=True)
class _Bases:
    """The filterbank's pseudo-inverse (the solver's start), the lowest bin a filter covers, and
    the filterbank cut into blocks of `_BAND` bins with the mel rows that touch them: each filter
    spans a few neighbouring bins, so for the 192-bin FINE mel the blocks hold an eighth of the
    dense products."""

    pinv: np.ndarray
    low: int
    blocks: tuple[tuple[int, int, int, int, np.ndarray, np.ndarray], ...]  # b0, b1, m0, m1, fb.T, step * fb


_BASES: dict[MelSpec, _Bases] = {}


def _bases(spec: MelSpec) -> _Bases:
    """The solver's bases for a spec, computed once."""
    if spec not in _BASES:
        fb = mel_filterbank(spec).astype(np.float64)
        step = 1.0 / float(np.linalg.norm(fb, 2) ** 2)  # 1 / the squared spectral norm
        touched = fb > 0
        low = int(np.flatnonzero(touched.any(axis=0))[0])
        blocks = []
        for b0 in range(0, fb.shape[1], _BAND):
            b1 = min(fb.shape[1], b0 + _BAND)
            rows = np.flatnonzero(touched[:, b0:b1].any(axis=1))
            if len(rows):
                sub = fb[rows[0]:rows[-1] + 1, b0:b1]
                blocks.append((b0, b1, int(rows[0]), int(rows[-1]) + 1,
                               np.ascontiguousarray(sub.T, dtype=np.float32), (step * sub).astype(np.float32)))
        if sum((m1 - m0) * (b1 - b0) for b0, b1, m0, m1, _, _ in blocks) > _DENSE_ABOVE * fb.size:
            blocks = [(0, fb.shape[1], 0, fb.shape[0], np.ascontiguousarray(fb.T, dtype=np.float32),
                       (step * fb).astype(np.float32))]  # too few zeros to pay for the smaller products
        _BASES[spec] = _Bases(np.linalg.pinv(fb).astype(np.float32), low, tuple(blocks))
    return _BASES[spec]


def mel_to_magnitude(log_mel: np.ndarray, spec: MelSpec = MelSpec(), iters: int = 30) -> np.ndarray:
    """[n_fft//2+1, frames] linear magnitude whose mel power best matches exp(log_mel) (NNLS)."""
    return _frame_magnitude(np.ascontiguousarray(np.asarray(log_mel, dtype=np.float32).T), spec, iters).T


def _frame_magnitude(log_mel_t: np.ndarray, spec: MelSpec, iters: int = 30) -> np.ndarray:
    """mel_to_magnitude frame-major: [frames, n_mels] log-mel to [frames, bins] magnitude. Each
    frame is its own least-squares problem, so any block of frames can be solved alone. The bins
    below the lowest filter (under fmin: no mel band sees them) get the Hann window's leakage of
    the lowest band's partials, half its magnitude one bin down and a tenth two bins down: left
    empty, a bass note there loses the side of its main lobe and Griffin-Lim moves its pitch."""
    bases = _bases(spec)
    low = bases.low
    power_mel = np.exp(log_mel_t)
    p = np.maximum(power_mel @ bases.pinv.T, 0.0)
    resid = np.empty_like(power_mel)
    grad = np.zeros_like(p)  # bins no filter covers keep a zero gradient
    for _ in range(iters):  # projected gradient on ||fb p - m||^2 subject to p >= 0, in place
        np.negative(power_mel, out=resid)
        for b0, b1, m0, m1, fb_t, _ in bases.blocks:  # resid = fb p - m
            resid[:, m0:m1] += p[:, b0:b1] @ fb_t
        for b0, b1, m0, m1, _, step_fb in bases.blocks:  # grad = step * fb^T resid
            np.matmul(resid[:, m0:m1], step_fb, out=grad[:, b0:b1])
        p -= grad
        np.maximum(p, 0.0, out=p)
    mag = np.sqrt(p, out=p)
    for d, share in enumerate(_BELOW, start=1):
        if low - d >= 0:
            np.maximum(mag[:, low - d], share * mag[:, low], out=mag[:, low - d])
    return mag


class _Frames:
    """What one (spec, frames, length) STFT pair needs, computed once per call, frame-major
    ([frames, bins]) so no transform runs on a transposed array."""

    def __init__(self, spec: MelSpec, frames: int, length: int, circular: bool = False) -> None:
        self.spec, self.frames, self.length, self.circular = spec, frames, length, circular
        if circular and length != frames * spec.hop:
            raise ValueError(f"a circular STFT of {frames} frames is {frames * spec.hop} samples, not {length}")
        self.window = np.hanning(spec.n_fft + 1)[:-1].astype(np.float32)
        # the squared-window sum of the overlap-add is the same every iteration: invert it once
        norm = self._place(_overlap_add(np.broadcast_to(self.window**2, (frames, spec.n_fft)), spec.hop))
        self.inv_norm = np.where(norm > 1e-8, 1.0 / np.maximum(norm, 1e-8), 1.0).astype(np.float32)

    def windows(self, x: np.ndarray) -> np.ndarray:
        """Read-only [at most `frames`, n_fft] view of the centred STFT's frames of `x` (fewer
        rows when `x` is too short to reach the last frames)."""
        spec = self.spec
        pad = spec.n_fft // 2
        mode = "wrap" if self.circular else "reflect" if len(x) > pad else "constant"
        xp = np.pad(x, (pad, pad), mode=mode)
        return np.lib.stride_tricks.sliding_window_view(xp, spec.n_fft)[:: spec.hop][: self.frames]

    def overlap_add(self, frames: np.ndarray, pool: ThreadPoolExecutor | None = None, workers: int = 1) -> np.ndarray:
        """Audio of `length` samples from windowed [frames, n_fft] frames (`workers` threads of
        `pool` summing disjoint runs of the output)."""
        out = self._place(_overlap_add(frames, self.spec.hop, pool, workers))
        out *= self.inv_norm
        return out

    def _place(self, out: np.ndarray) -> np.ndarray:
        """An overlap-add's samples at their times (frame 0 centred on sample 0): cut to `length`,
        or, circular, what falls before the start or past the end folded round onto the circle."""
        pad = self.spec.n_fft // 2
        if not self.circular:
            out = out[pad:pad + self.length]
            return np.pad(out, (0, max(0, self.length - len(out))))
        folded = np.zeros(self.length, np.float32)
        for start in range(-pad, len(out) - pad, self.length):
            seg = out[start + pad:start + pad + self.length]
            lo = start % self.length
            head = min(len(seg), self.length - lo)
            folded[lo:lo + head] += seg[:head]
            folded[:len(seg) - head] += seg[head:]
        return folded


def _overlap_add(frames: np.ndarray, hop: int, pool: ThreadPoolExecutor | None = None, workers: int = 1) -> np.ndarray:
    """Sum of [n, width] frames placed every `hop` samples (vectorised: frames cut into hop-long
    chunks, chunk k of frame i lands on output chunk i + k). With a pool, each of `workers`
    threads sums a run of output chunks of its own (the same sums, in the same order)."""
    n, width = frames.shape
    k = -(-width // hop)
    out = np.zeros((n + k - 1, hop), dtype=np.float32)

    def rows(r0: int, r1: int) -> None:  # output chunks r0..r1-1
        for j in range(k):
            w = min(hop, width - j * hop)
            lo, hi = max(r0, j), min(r1, j + n)
            if lo < hi:
                out[lo:hi, :w] += frames[lo - j:hi - j, j * hop:j * hop + w]

    total = n + k - 1
    if pool is None or workers <= 1:
        rows(0, total)
    else:
        cuts = [total * i // workers for i in range(workers + 1)]
        list(pool.map(rows, cuts[:-1], cuts[1:]))
    return out.reshape(-1)[: width + hop * (n - 1)]


def _scale(z: np.ndarray, s: np.ndarray) -> np.ndarray:
    """z * s for complex64 z and real float32 s, as two real multiplies (no complex arithmetic)."""
    z = np.ascontiguousarray(z, dtype=np.complex64)
    out = np.empty_like(z)
    np.multiply(z.view(np.float32).reshape(*z.shape, 2), s[..., None], out=out.view(np.float32).reshape(*z.shape, 2))
    return out


_CHUNK = 128  # frames per pass: a pass works on ~2.5 MB of buffers, not the whole clip


def griffin_lim(log_mel: np.ndarray, spec: MelSpec = MelSpec(), n_iter: int = 32, momentum: float = 0.99,
                seed: int = 0, length: int | None = None, circular: bool = False,
                nnls_iters: int = 30, workers: int = 1) -> np.ndarray:
    """float32 mono audio at spec.sample_rate for a [n_mels, frames] log-mel. `circular`: the
    log-mel is one period of a loop, and so is the audio (frames * hop samples): the STFT reads
    past the end from the start and the overlap-add folds round, so the seam is like any other
    point of the loop. `nnls_iters`: the mel-to-magnitude solver's iterations. `workers`: threads
    that share each pass's frames (numpy's FFTs release the GIL); the result is the same."""
    log_mel = np.asarray(log_mel)
    if log_mel.ndim != 2 or log_mel.shape[0] != spec.n_mels:
        raise ValueError(f"griffin_lim expects [{spec.n_mels}, frames], got {log_mel.shape}")
    frames = log_mel.shape[1]
    n_fft, bins = spec.n_fft, spec.n_fft // 2 + 1
    length = length if length is not None else frames * spec.hop
    tf = _Frames(spec, frames, length, circular)
    mag = _frame_magnitude(np.ascontiguousarray(log_mel.astype(np.float32, copy=False).T), spec, nnls_iters)
    phase = np.random.default_rng(seed).random((bins, frames)).T  # the same draws as a [bins, frames] phase
    prev = np.zeros((frames, bins), np.complex64)  # fast Griffin-Lim's last rebuilt spectrum
    windowed = np.empty((frames, n_fft), np.float32)  # the frames the overlap-add sums
    c = np.float32(momentum / (1.0 + momentum))
    chunks = [(s, min(frames, s + _CHUNK)) for s in range(0, frames, _CHUNK)]
    workers = max(1, min(int(workers), len(chunks)))
    # each worker takes a contiguous run of chunks with buffers of its own; the chunks of one
    # pass are independent, so the result does not depend on `workers`
    parts = [chunks[k * len(chunks) // workers:(k + 1) * len(chunks) // workers] for k in range(workers)]

    def synth(s: int, e: int, spectrum: np.ndarray) -> None:  # spectrum -> windowed frames
        np.fft.irfft(spectrum, n_fft, axis=1, out=windowed[s:e])
        windowed[s:e] *= tf.window

    def buffers() -> tuple[np.ndarray, ...]:
        return (np.empty((_CHUNK, n_fft), np.float64), np.empty((_CHUNK, bins), np.complex128),
                np.empty((_CHUNK, bins), np.complex64), np.empty((_CHUNK, bins), np.float32))

    bufs = [buffers() for _ in parts]

    def iterate_part(view: np.ndarray, k: int) -> None:  # audio frames -> the next target -> windowed frames
        w, rebuilt, target, ratio = bufs[k]
        for s, e in parts[k]:
            rows = view[s:e]  # fewer rows where the audio ended before the last frames
            n, m = rows.shape[0], e - s
            np.multiply(rows, tf.window, out=w[:n])
            np.fft.rfft(w[:n], axis=1, out=rebuilt[:n])
            rebuilt[n:m] = 0
            t, r, p = target[:m], ratio[:m], prev[s:e]
            np.multiply(p, -c, out=t)
            t += rebuilt[:m]  # the momentum step: rebuilt - c * prev
            p[...] = rebuilt[:m]
            # the wanted magnitude with the accelerated estimate's phase
            np.abs(t, out=r)
            np.maximum(r, 1e-16, out=r)
            np.divide(mag[s:e], r, out=r)
            tv = t.view(np.float32)
            np.multiply(tv[:, 0::2], r, out=tv[:, 0::2])
            np.multiply(tv[:, 1::2], r, out=tv[:, 1::2])
            synth(s, e, t)

    def start_part(k: int) -> None:  # the initial phase's frames, shared as the passes are
        for s, e in parts[k]:
            synth(s, e, _scale(np.exp(2j * np.pi * phase[s:e]).astype(np.complex64), mag[s:e]))

    if workers == 1:
        start_part(0)
        for _ in range(max(1, n_iter)):
            iterate_part(tf.windows(tf.overlap_add(windowed)), 0)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="n2m-gl") as pool:
            list(pool.map(start_part, range(workers)))
            for _ in range(max(1, n_iter)):
                view = tf.windows(tf.overlap_add(windowed, pool, workers))
                list(pool.map(iterate_part, [view] * workers, range(workers)))
    return tf.overlap_add(windowed).astype(np.float32, copy=False)
