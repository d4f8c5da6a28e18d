"""DDP over gloo: two CPU processes under torchrun train the tiny generator and stay in sync."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from n2m.exporter.data import write_synthetic_corpus

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_ddp_keeps_parameters_identical(tmp_path):
    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=8, seconds=3.0, seed=2)
    raw = json.loads((CONFIGS / "tiny_generator.json").read_text())
    raw["corpus"] = str(corpus)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(raw))
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "n2m.exporter.train", str(cfg), "--out", str(out), "--steps", "4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    end = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][-1]
    assert end["event"] == "end" and end["step"] == 4
    sums = end["ddp_param_checksums"]
    assert len(sums) == 2
    assert sums[0] == sums[1]
    import torch

    from n2m.exporter.models.unet import build_model

    ckpt = torch.load(out / "last.pt", weights_only=False)
    torch.manual_seed(raw.get("seed", 0))
    init = build_model(ckpt["config"])
    changed = any(not torch.equal(p, ckpt["model"][k]) for k, p in init.state_dict().items())
    assert changed  # the ranks trained, and agree
