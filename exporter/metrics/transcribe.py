"""Note transcription with Basic Pitch (Spotify, ICASSP 2022) run on ONNX Runtime.

The model is the `nmp.onnx` that the `basic-pitch` wheel ships (installed with `--no-deps`, so
without TensorFlow: scripts/setup.sh), so nothing downloads at run time. The front-end here is
basic_pitch's own (`inference.get_audio_input`) on arrays instead of files: mono audio at 22050 Hz,
padded by half the 30-frame overlap, cut into 2 s windows (43,844 samples) that overlap by 30
frames, run in batches; the windows' outputs are unwrapped and decoded into notes by basic_pitch's
own post-processing (onset 0.5, frame 0.3, 127.7 ms minimum, the melodia trick: `predict`'s
defaults). Notes are (start s, end s, MIDI pitch, amplitude) rows; pitch bends are not computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOTE_AMPLITUDE = 0.3  # notes quieter than this are dropped by the meters (`Transcriber.notes`)
ONSET_THRESHOLD = 0.5
FRAME_THRESHOLD = 0.3
MIN_NOTE_MS = 127.70
OVERLAP_FRAMES = 30
BATCH = 8  # windows per ONNX Runtime call


class TranscriberUnavailable(RuntimeError):
    """Basic Pitch is not installed; the message says how to install it."""


def _basic_pitch():
    """The basic_pitch package, imported without its warnings about absent TensorFlow/CoreML/TFLite."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import basic_pitch
        import basic_pitch.inference  # noqa: F401  (unwrap_output)
        import basic_pitch.note_creation  # noqa: F401
    except ImportError as exc:
        raise TranscriberUnavailable(
            f"Basic Pitch is not installed ({exc}). Fix: `scripts/setup.sh dev`, or "
            "`pip install --no-deps basic-pitch==0.4.0` plus `pip install pretty_midi mir_eval resampy`"
        ) from exc
    finally:
        logging.disable(previous)
    return basic_pitch


def model_path() -> Path:
    """The ONNX graph shipped inside the basic-pitch wheel."""
    bp = _basic_pitch()
    path = Path(bp.build_icassp_2022_model_path(bp.FilenameSuffix.onnx))
    if not path.is_file():
        raise TranscriberUnavailable(f"{path} not found: reinstall basic-pitch (`scripts/setup.sh dev`)")
    return path


@dataclass(frozen=True)
class Notes:
    """Transcribed notes, one row each: start and end (s), MIDI pitch, amplitude (0-1)."""

    rows: np.ndarray  # float64 [n, 4]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def onsets(self) -> np.ndarray:
        return self.rows[:, 0]

    @property
    def offsets(self) -> np.ndarray:
        return self.rows[:, 1]

    @property
    def pitches(self) -> np.ndarray:
        return self.rows[:, 2].astype(int)

    @property
    def amplitudes(self) -> np.ndarray:
        return self.rows[:, 3]

    def louder_than(self, amplitude: float) -> Notes:
        return Notes(self.rows[self.amplitudes > amplitude])

    @classmethod
    def of(cls, rows) -> Notes:
        return cls(np.asarray(rows, dtype=np.float64).reshape(-1, 4))


class Transcriber:
    """Basic Pitch on one ONNX Runtime session, built once and reused for every clip."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        bp = _basic_pitch()
        self.sr = int(bp.constants.AUDIO_SAMPLE_RATE)
        self.window = int(bp.constants.AUDIO_N_SAMPLES)
        self.fft_hop = int(bp.constants.FFT_HOP)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        # basic_pitch.inference.Model's output names, in its order: note, onset, contour
        self.outputs = ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"]

    def model_output(self, audio: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """{"note", "onset", "contour"}: [frames, bins] activations of mono (or [channels,
        samples], mixed down) audio at `sr`."""
        bp = _basic_pitch()
        x = _mono(audio)
        if sr != self.sr:
            import soxr

            x = soxr.resample(x, sr, self.sr, quality="HQ").astype(np.float32)
        length = len(x)
        overlap = OVERLAP_FRAMES * self.fft_hop
        hop = self.window - overlap
        x = np.concatenate([np.zeros(overlap // 2, np.float32), x])
        starts = range(0, len(x), hop)
        windows = np.zeros((len(starts), self.window, 1), np.float32)
        for i, s in enumerate(starts):
            w = x[s:s + self.window]
            windows[i, :len(w), 0] = w
        parts: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
        for b in range(0, len(windows), BATCH):
            outs = self.session.run(self.outputs, {self.input: windows[b:b + BATCH]})
            for key, out in zip(("note", "onset", "contour"), outs, strict=True):
                parts[key].append(out)
        return {k: bp.inference.unwrap_output(np.concatenate(v), length, OVERLAP_FRAMES)
                for k, v in parts.items()}

    def transcribe(self, audio: np.ndarray, sr: int) -> Notes:
        """Every note Basic Pitch finds, with `predict`'s default thresholds."""
        nc = _basic_pitch().note_creation
        out = self.model_output(audio, sr)
        if out["note"] is None or len(out["note"]) == 0:
            return Notes.of([])
        min_len = int(np.round(MIN_NOTE_MS / 1000 * (self.sr / self.fft_hop)))
        events = nc.output_to_notes_polyphonic(
            out["note"], out["onset"], onset_thresh=ONSET_THRESHOLD, frame_thresh=FRAME_THRESHOLD,
            min_note_len=min_len, infer_onsets=True, max_freq=None, min_freq=None, melodia_trick=True)
        times = nc.model_frames_to_time(out["contour"].shape[0])
        return Notes.of([(times[s], times[e], p, a) for s, e, p, a in events])

    def notes(self, audio: np.ndarray, sr: int) -> Notes:
        """The notes the meters use: amplitude above NOTE_AMPLITUDE."""
        return self.transcribe(audio, sr).louder_than(NOTE_AMPLITUDE)


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=0)
    if a.ndim != 1:
        raise ValueError(f"expected [samples] or [channels, samples] audio, got {a.shape}")
    return np.ascontiguousarray(np.nan_to_num(a))
