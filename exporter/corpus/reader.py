"""Read a built corpus: its description, clip metadata, cached log-mels and 16 kHz audio.

Layout (format 1), written by `n2m corpus build`:

    DIR/corpus.json                 description (id, format, seed, hours, mel spec, rates, styles, ...;
                                    "fine_mel" and "coarse_mel": the specs of the v2 caches, present
                                    when the shards hold them)
    DIR/eval_prompts.jsonl          evaluation prompts with the controls each asks for
    DIR/shards/NNNNN/meta.jsonl     one JSON object per clip
    DIR/shards/NNNNN/mel.npy        float16 [80, frames], clips concatenated along frames
    DIR/shards/NNNNN/audio16k.npy   int16 [samples], 16 kHz mono mix, clips concatenated
    DIR/shards/NNNNN/audio48k.npy   int16 [samples], 48 kHz mono mix (only corpora built with
                                    --audio48k, whose renders and FLACs are 48 kHz)
    DIR/shards/NNNNN/mel_mid.npy    float16 [192, frames]: FINE log-mel (bridge.features) of the mid
                                    (L+R)/2 of the FLAC, 100 frames/s (44.1 kHz renders only)
    DIR/shards/NNNNN/mel_side.npy   float16 [192, frames]: the same of the side (L-R)/2
    DIR/shards/NNNNN/coarse.npy     float16 [K, frames]: COARSE log-mel (the mid's FINE mel pooled to
                                    50 frames/s, bins centred <= 8 kHz; K = coarse_mel.n_bins)
    DIR/shards/NNNNN/<id>.flac      stereo 44.1 kHz mix (48 kHz with --audio48k)

Per clip, meta.jsonl gives each array's slice: mel_offset/mel_frames, audio_offset/audio_samples,
fine_offset/fine_frames (mel_mid and mel_side alike), coarse_offset/coarse_frames,
audio48k_offset/audio48k_samples. A FLAC of n samples has 1 + n // 441 FINE frames and
ceil(that / 2) COARSE frames.

Only complete shards (renamed from NNNNN.tmp) are read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from n2m.bridge.features import CoarseSpec, MelSpec

FORMAT = 1
SPLITS = ("train", "val", "test")


class CorpusError(RuntimeError):
    """A corpus directory that cannot be read; the message names the file and the fix."""


class CorpusReader:
    """Random access to a built corpus. Arrays are memory-mapped; nothing is loaded eagerly."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "corpus.json"
        if not info_path.is_file():
            raise CorpusError(
                f"{info_path} not found: build a corpus first with "
                f"`n2m corpus build --out {self.root} --hours H --seed S`"
            )
        try:
            self.info: dict = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{info_path} is not valid JSON ({exc}): rebuild the corpus") from exc
        if self.info.get("format") != FORMAT:
            raise CorpusError(f"{info_path}: format {self.info.get('format')!r}, this reader reads {FORMAT}")
        self._clips: list[dict] | None = None
        self._mmaps: dict[tuple[str, str], np.ndarray] = {}

    @property
    def styles(self) -> list[str]:
        return list(self.info.get("styles", []))

    def shard_dirs(self) -> list[Path]:
        shards = self.root / "shards"
        if not shards.is_dir():
            return []
        return sorted(p for p in shards.iterdir() if p.is_dir() and not p.name.endswith(".tmp")
                      and (p / "meta.jsonl").is_file())

    def _load(self) -> list[dict]:
        if self._clips is None:
            clips: list[dict] = []
            for shard in self.shard_dirs():
                with open(shard / "meta.jsonl") as f:
                    for line in f:
                        if line.strip():
                            meta = json.loads(line)
                            meta["shard"] = str(shard)
                            clips.append(meta)
            self._clips = clips
        return self._clips

    def clips(self, split: str | None = None) -> list[dict]:
        """Metadata dicts of the clips (plus "shard": the shard directory), optionally one split."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
        return [c for c in self._load() if split is None or c["split"] == split]

    def _array(self, clip: dict, name: str) -> np.ndarray:
        key = (clip["shard"], name)
        arr = self._mmaps.get(key)
        if arr is None:
            arr = np.load(Path(clip["shard"]) / name, mmap_mode="r")
            self._mmaps[key] = arr
        return arr

    def mel(self, clip: dict) -> np.ndarray:
        """float32 [80, mel_frames] log-mel of the clip's 16 kHz mono mix."""
        arr = self._array(clip, "mel.npy")
        o, n = clip["mel_offset"], clip["mel_frames"]
        return np.asarray(arr[:, o:o + n], dtype=np.float32)

    def audio16k(self, clip: dict) -> np.ndarray:
        """float32 [audio_samples] 16 kHz mono mix in [-1, 1]."""
        arr = self._array(clip, "audio16k.npy")
        o, n = clip["audio_offset"], clip["audio_samples"]
        return np.asarray(arr[o:o + n], dtype=np.float32) / 32768.0

    @property
    def has_audio48k(self) -> bool:
        """Whether the corpus keeps 48 kHz renders (built with `n2m corpus build --audio48k`)."""
        return int(self.info.get("audio48k_rate", 0)) == 48000

    def audio48k(self, clip: dict) -> np.ndarray:
        """float32 [audio48k_samples] 48 kHz mono mix in [-1, 1] (the render itself, never upsampled)."""
        if not self.has_audio48k or "audio48k_offset" not in clip:
            raise CorpusError(
                f"{self.root} keeps no 48 kHz audio (its renders are stored at 16 kHz). Fix: build a "
                f"corpus with 48 kHz renders: `n2m corpus build --audio48k --out DIR --hours H --seed S`")
        arr = self._array(clip, "audio48k.npy")
        o, n = clip["audio48k_offset"], clip["audio48k_samples"]
        return np.asarray(arr[o:o + n], dtype=np.float32) / 32768.0

    @property
    def has_fine(self) -> bool:
        """Whether the shards cache the v2 representations (FINE mid/side and COARSE mels)."""
        return isinstance(self.info.get("fine_mel"), dict) and isinstance(self.info.get("coarse_mel"), dict)

    def _require_fine(self, clip: dict) -> None:
        if not self.has_fine or "fine_offset" not in clip:
            raise CorpusError(
                f"{self.root} caches no FINE/COARSE mels (a corpus built before them, or with --audio48k). "
                f"Fix: build a 44.1 kHz corpus: `n2m corpus build --out DIR --hours H --seed S`")

    @property
    def fine_spec(self) -> MelSpec:
        return MelSpec(**self.info["fine_mel"])

    @property
    def coarse_spec(self) -> CoarseSpec:
        return CoarseSpec.from_dict(self.info["coarse_mel"])

    def fine(self, clip: dict) -> np.ndarray:
        """float32 [2, 192, fine_frames]: FINE log-mel of the clip's mid and side, 100 frames/s."""
        self._require_fine(clip)
        o, n = clip["fine_offset"], clip["fine_frames"]
        return np.stack([np.asarray(self._array(clip, name)[:, o:o + n], dtype=np.float32)
                         for name in ("mel_mid.npy", "mel_side.npy")])

    def coarse(self, clip: dict) -> np.ndarray:
        """float32 [K, coarse_frames]: COARSE log-mel of the clip's mid, 50 frames/s."""
        self._require_fine(clip)
        o, n = clip["coarse_offset"], clip["coarse_frames"]
        return np.asarray(self._array(clip, "coarse.npy")[:, o:o + n], dtype=np.float32)

    def flac_path(self, clip: dict) -> Path:
        return Path(clip["shard"]) / clip["flac"]

    def eval_prompts(self) -> list[dict]:
        path = self.root / "eval_prompts.jsonl"
        if not path.is_file():
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def __len__(self) -> int:
        return len(self._load())
