"""A side-band generator whose side rows' output is their x0 estimate (`side_x0`), plain or
preconditioned by the rows' mean and sd (`side_mean`, `side_sd`): the network's v for them is built
from it with the schedule, training compares them with the clean rows, a warm start zeroes them,
and the exported graph gives the runtime's sampler that estimate."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from n2m.bridge.features import COARSE
from n2m.bridge.schedule import Schedule
from n2m.exporter.data import write_synthetic_corpus
from n2m.exporter.export.warmstart import init_state, stage_state_dict
from n2m.exporter.models.configs import tiny_coarse_generator_config
from n2m.exporter.models.unet import build_model
from n2m.exporter.train import Trainer, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"
BANDS = 8
ROWS = COARSE.n_bins + BANDS


MEAN = tuple(-0.5 + 0.05 * i for i in range(BANDS))  # a made-up per-band mean and sd
SD = tuple(0.3 + 0.1 * i for i in range(BANDS))


def _cfg(side_x0: bool = True, precond: bool = False):
    return replace(tiny_coarse_generator_config(), side_bands=BANDS, in_channels=ROWS, out_channels=ROWS,
                   side_x0=side_x0, side_mean=MEAN if precond else (), side_sd=SD if precond else ())


def _inputs(n: int = 3, frames: int = 32, seed: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(n, ROWS, frames, generator=g), t=torch.tensor([0.05, 0.5, 0.95])[:n],
                text=torch.randn(n, 5, 384, generator=g), text_mask=torch.ones(n, 5),
                bpm=torch.full((n,), 120.0), key=torch.zeros(n, dtype=torch.long),
                mode=torch.zeros(n, dtype=torch.long), meter=torch.zeros(n, dtype=torch.long),
                grid=torch.rand(n, 4, frames, generator=g))


def test_side_rows_v_is_built_from_their_x0() -> None:
    """Random weights: the mel rows' v is the raw output; the side rows' v is (alpha z - x0) / sigma
    for the raw side rows x0, so the sampler's estimate alpha z - sigma v gives x0 back (to 1e-4)
    at t = 0.05, 0.5 and 0.95. A config with side_x0 and no side bands is refused."""
    torch.manual_seed(0)
    model = build_model(_cfg()).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    kw = _inputs()
    with torch.no_grad():
        v, raw = model(**kw), model(**kw, raw=True)
    k = COARSE.n_bins
    torch.testing.assert_close(v[:, :k], raw[:, :k])
    a, s = Schedule().alpha_sigma(kw["t"])
    x0 = a.reshape(-1, 1, 1) * kw["x"][:, k:] - s.reshape(-1, 1, 1) * v[:, k:]
    torch.testing.assert_close(x0, raw[:, k:], atol=1e-4, rtol=1e-4)
    assert raw[:, k:].abs().mean() > 0.01
    with pytest.raises(ValueError, match="side_x0 needs side bands"):
        replace(tiny_coarse_generator_config(), side_x0=True)
    cfg = load_config(CONFIGS / "v3_generator_side_x0.json").stage_config()
    assert cfg.side_x0 and cfg.side_bands == BANDS


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict[str, Trainer]]:
    """A side-band generator (v rows) trained 2 steps and saved, then a side_x0 run warm-started
    from its checkpoint and trained 2 steps, then a preconditioned run warm-started from that."""
    work = tmp_path_factory.mktemp("x0")
    corpus = write_synthetic_corpus(work / "corpus", n_clips=4, seconds=3.0, seed=4, fine=True)
    runs = {}
    for name, x0, pre, src in (("v", False, False, ""), ("x0", True, False, "v"), ("pre", True, True, "x0")):
        cfg = load_config(CONFIGS / "tiny_generator.json")
        cfg.corpus, cfg.crop_frames, cfg.model = str(corpus), 32, asdict(_cfg(x0, pre))
        trainer = Trainer(cfg, work / name)
        if src:
            trainer.init_from(work / src / "last.pt")
        runs[name] = trainer
        for _ in range(2):
            assert np.isfinite(trainer.train_step())
        trainer.save()
    return work, runs


def test_a_warm_start_zeroes_the_side_rows_and_keeps_the_rest(run) -> None:
    """From the v-rows run's checkpoint to side_x0, and from the side_x0 run's to a preconditioned
    output: the side output rows start at zero (F = 0), every other weight is the source's."""
    work, _ = run
    k = COARSE.n_bins
    for src_run, cfg in (("v", _cfg()), ("x0", _cfg(precond=True))):  # v -> x0, x0 -> preconditioned
        src = torch.load(work / src_run / "last.pt", map_location="cpu", weights_only=False)["ema"]
        state = init_state(work / src_run / "last.pt", "generator", cfg)
        assert state["conv_out.weight"][k:].abs().max() == 0 and state["conv_out.bias"][k:].abs().max() == 0
        torch.testing.assert_close(state["conv_out.weight"][:k], src["conv_out.weight"][:k])
        assert src["conv_out.weight"][k:].abs().max() > 0
        for name in src:
            if not name.startswith("conv_out"):
                torch.testing.assert_close(state[name], src[name])


def _precond_by_hand(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, c_skip, c_out) [b, BANDS, 1] for MEAN and SD at times `t`, from the formulas."""
    a, s = (u.double().reshape(-1, 1, 1) for u in Schedule().alpha_sigma(t.double()))
    sd = torch.tensor(SD, dtype=torch.float64).reshape(1, -1, 1)
    var = a ** 2 * sd ** 2 + s ** 2
    mean = torch.tensor(MEAN, dtype=torch.float64).reshape(1, -1, 1)
    return mean.float(), (a * sd ** 2 / var).float(), (s * sd / var.sqrt()).float()


def _loss_by_hand(trainer, batch: dict, seed: int, cap: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the batch's loss from the model's raw output with the noise of `seed`: mel rows' v error, side
    rows' x0 error weighted min(1 / sigma^2, cap) or 1, or 1 / c_out^2 when preconditioned; those
    weights [b, 1 or BANDS, 1])."""
    torch.manual_seed(seed)
    x = batch["mel"]
    t = torch.rand(x.shape[0])
    eps = torch.randn_like(x)
    sch = Schedule()
    z, target = sch.add_noise(x, eps, t), sch.v_target(x, eps, t)
    text, mask = trainer.text.batch(batch["captions"])
    raw = trainer.model(z, t, text, mask, batch["bpm"], batch["key"], batch["mode"], batch["meter"], batch["grid"],
                        raw=True)
    k = COARSE.n_bins
    w = torch.tensor([min(1.0 / float(sch.alpha_sigma(tt)[1]) ** 2, cap) if cap else 1.0 for tt in t])
    w = w.reshape(-1, 1, 1)
    if trainer.stage_cfg.side_sd:
        w = _precond_by_hand(t)[2] ** -2
    return torch.cat([(raw[:, :k] - target[:, :k]) ** 2, w * (raw[:, k:] - x[:, k:]) ** 2], 1).mean(), w


def test_training_compares_the_side_rows_with_the_clean_rows(run) -> None:
    """The loss of a batch is the mean of the mel rows' v error and the side rows' x0 error, worked
    out here from the model's raw output with the same noise."""
    for name in ("x0", "pre"):  # preconditioned: the side rows' x0 error weighted by 1 / c_out^2
        trainer = run[1][name]
        batch = trainer.data.batch(np.random.default_rng(1), 2)
        torch.manual_seed(5)
        loss = trainer.loss(batch)
        want, w = _loss_by_hand(trainer, batch, 5, None)
        torch.testing.assert_close(loss, want)
        assert (name == "pre") == bool(float(w.max()) > 1.5)


def test_a_snr_cap_weights_the_side_rows_toward_low_noise(run, tmp_path: Path) -> None:
    """`side_x0_snr_cap` 5: the side rows' x0 error weighted min(1 + SNR(t), 5) (= min(1 / sigma^2, 5)),
    the mel rows' v error by 1, worked out here by hand; a cap below 1 (0.5 tried) is refused."""
    from n2m.exporter.train import ConfigError

    trainer = run[1]["x0"]
    batch = trainer.data.batch(np.random.default_rng(3), 3)
    trainer.cfg.side_x0_snr_cap = 5.0
    try:
        torch.manual_seed(0)
        loss = trainer.loss(batch)
    finally:
        trainer.cfg.side_x0_snr_cap = 1.0
    want, w = _loss_by_hand(trainer, batch, 0, 5.0)
    assert float(w.max()) == 5.0 and float(w.min()) < 5.0  # seed 0's times: one capped, two not
    torch.testing.assert_close(loss, want)
    bad = json.loads((CONFIGS / "v3_generator_side_x0.json").read_text())
    bad["side_x0_snr_cap"] = 0.5
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="side_x0_snr_cap 0.5 is below 1"):
        load_config(tmp_path / "bad.json")


def test_the_exported_graph_gives_the_sampler_the_x0_rows(tiny_side_dir: Path) -> None:
    """Exported to ONNX (a seeded random side_x0 generator; parity against torch checked by the
    export), the graph's v at t = 0.04 turns back into the raw side rows, and the weights recovered
    from the graph are the checkpoint's EMA weights."""
    import onnxruntime as ort

    ckpt = torch.load(tiny_side_dir.parent / "generator.pt", map_location="cpu", weights_only=False)
    ema, cfg = ckpt["ema"], ckpt["config"]
    assert cfg["side_x0"] and cfg["side_bands"] == BANDS
    rec = stage_state_dict(tiny_side_dir, "generator", build_model(cfg))
    for name, w in ema.items():
        torch.testing.assert_close(rec[name], w, atol=1e-6, rtol=0)
    model = build_model(cfg).eval()
    model.load_state_dict(ema)
    _assert_graph_gives_raw_rows(model, ort.InferenceSession(str(tiny_side_dir / "generator.onnx"),
                                                             providers=["CPUExecutionProvider"]))


def _assert_graph_gives_raw_rows(model, sess) -> None:
    """The graph's v at t = 0.04 turns back (a z - s v) into torch's raw side rows (1e-4)."""
    kw = _inputs(n=1)
    kw["t"] = torch.tensor([0.04])
    kw["text"] = kw["text"][:, :, :model.cfg.text_dim]
    feeds = {i.name: kw[i.name].numpy() for i in sess.get_inputs()}
    v = sess.run(None, feeds)[0]
    with torch.no_grad():
        raw = model(**kw, raw=True).numpy()
    a, s = (float(u) for u in Schedule().alpha_sigma(np.float64(0.04)))
    k = COARSE.n_bins
    np.testing.assert_allclose(a * feeds["x"][:, k:] - s * v[:, k:], raw[:, k:], atol=1e-4)


def test_a_preconditioned_side_output_is_worked_out_from_its_formulas() -> None:
    """Random weights, MEAN and SD made up: the raw side rows are mean + c_skip (z - alpha mean) +
    c_out F for the network's own side output F (caught at conv_out), with c_skip and c_out from the
    formulas here; the sampler's estimate alpha z - sigma v gives them back; with F zeroed and z a
    clean signal noised to t = 0.001, the rows pass that signal through (to 1e-2). Refused: side_sd
    without side_x0, a value per band missing, an sd of 0."""
    torch.manual_seed(0)
    model = build_model(_cfg(precond=True)).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    caught = {}
    model.conv_out.register_forward_hook(lambda m, i, o: caught.update(out=o))
    kw = _inputs()
    with torch.no_grad():
        v, raw = model(**kw), model(**kw, raw=True)
    k = COARSE.n_bins
    mean, c_skip, c_out = _precond_by_hand(kw["t"])
    a, s = (u.reshape(-1, 1, 1) for u in Schedule().alpha_sigma(kw["t"]))
    want = mean + c_skip * (kw["x"][:, k:] - a * mean) + c_out * caught["out"][:, k:]
    torch.testing.assert_close(raw[:, k:], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a * kw["x"][:, k:] - s * v[:, k:], want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(v[:, :k], raw[:, :k])
    with torch.no_grad():
        model.conv_out.weight[k:] = 0.0
        model.conv_out.bias[k:] = 0.0
        clean = kw["x"] * 0.4 - 0.3
        t = torch.full((3,), 0.001)
        z = Schedule().add_noise(clean, torch.randn_like(clean), t)
        rows = model(**{**kw, "x": z, "t": t}, raw=True)[:, k:]
    torch.testing.assert_close(rows, clean[:, k:], atol=1e-2, rtol=0)
    for bad, match in ((dict(side_x0=False), "precondition a side_x0"), (dict(side_sd=SD[:-1]), "one value per"),
                       (dict(side_sd=(0.0,) * BANDS), "above 0")):
        with pytest.raises(ValueError, match=match):
            replace(_cfg(precond=True), **bad)


def test_a_preconditioned_run_takes_no_snr_cap(tmp_path: Path) -> None:
    """A config with side_mean and side_sd and side_x0_snr_cap 5 is refused with one line."""
    from n2m.exporter.train import ConfigError

    bad = json.loads((CONFIGS / "v3_generator_side_x0.json").read_text())
    bad["model"].update(side_mean=list(MEAN), side_sd=list(SD))
    bad["side_x0_snr_cap"] = 5
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="takes no cap"):
        load_config(tmp_path / "bad.json")


def test_the_preconditioned_graph_matches_torch(tmp_path: Path) -> None:
    """A seeded random preconditioned generator exported to ONNX: ORT's v equals torch's (1e-4) on
    the exporter's parity inputs, and at t = 0.04 it turns back into the raw side rows."""
    import onnxruntime as ort

    from n2m.exporter.export import onnx_unet

    model = onnx_unet.randomize_(build_model(_cfg(precond=True)).eval(), 3)
    path = onnx_unet.export_stage(model, tmp_path / "generator.onnx", fused=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert onnx_unet.parity(model, sess, batch=2, frames=32).max_abs < 1e-4
    _assert_graph_gives_raw_rows(model, sess)


def test_side_stats_are_each_bands_mean_and_sd(tmp_path: Path, capsys) -> None:
    """`python -m n2m.exporter.sidestats` on a synthetic corpus: per band, the mean and sd of every
    clip's normalised side rows laid end to end (numpy here), printed as JSON."""
    from n2m.exporter.data import GeneratorData
    from n2m.exporter.sidestats import main as stats_main

    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=3, seconds=2.0, seed=6, fine=True)
    cfg = json.loads((CONFIGS / "v3_generator_side_x0.json").read_text())
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert stats_main([str(tmp_path / "c.json"), "--corpus", str(corpus)]) == 0
    got = json.loads(capsys.readouterr().out)
    m = cfg["model"]
    data = GeneratorData(corpus, "train", 512, m["mel_mean"], m["mel_scale"], representation="coarse",
                         side_bands=BANDS)
    rows = np.concatenate([data.signal(c)[0][-BANDS:] for c in data.clips], axis=1).astype(np.float64)
    np.testing.assert_allclose(got["side_mean"], rows.mean(1), atol=1e-4)
    np.testing.assert_allclose(got["side_sd"], rows.std(1), atol=1e-4)
    assert min(got["side_sd"]) > 0
