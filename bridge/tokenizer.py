"""Prompt tokenisation for the ONNX text encoder with HuggingFace `tokenizers` (no torch, no transformers).

Matches training (exporter.textenc): the MiniLM WordPiece tokenizer, [CLS] ... [SEP], truncated to
the manifest's max_tokens, padded to the longest prompt of the batch, and to at least
`min_tokens` (4): the generator appends 4 control tokens to the context and builds their mask
from the first 4 text positions, so a batch of very short prompts ("jazz" is 3 tokens) needs
padding. Padding is masked (zero states, -1e4 attention bias), so it does not change the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class PromptTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int, min_tokens: int = 4) -> None:
        if max_tokens < 2:
            raise ValueError("max_tokens must be at least 2 ([CLS] and [SEP])")
        self.max_tokens = int(max_tokens)
        self.min_tokens = int(min_tokens)
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=self.max_tokens)

    @classmethod
    def from_file(cls, path: str | Path, max_tokens: int, min_tokens: int = 4) -> PromptTokenizer:
        return cls(Tokenizer.from_file(str(path)), max_tokens, min_tokens)

    def __call__(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids int64 [B, L], attention_mask int64 [B, L]), L = max(longest prompt, min_tokens)."""
        if isinstance(prompts, str):
            raise TypeError("pass a list of prompts")
        encs = self._tok.encode_batch(list(prompts))
        length = max(self.min_tokens, *(len(e.ids) for e in encs))
        ids = np.zeros((len(encs), length), dtype=np.int64)
        mask = np.zeros((len(encs), length), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return ids, mask
