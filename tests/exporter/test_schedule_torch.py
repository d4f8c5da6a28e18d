"""The one schedule (bridge.schedule) gives the same numbers on torch tensors as on numpy arrays."""

from __future__ import annotations

import numpy as np
import torch

from n2m.bridge.schedule import Schedule


def test_torch_and_numpy_schedules_agree():
    s = Schedule()
    t_np = np.linspace(0.0, 1.0, 101)
    t_pt = torch.from_numpy(t_np)
    np.testing.assert_allclose(s.logsnr(t_pt).numpy(), s.logsnr(t_np), rtol=1e-10, atol=1e-10)
    for a, b in zip(s.alpha_sigma(t_pt), s.alpha_sigma(t_np), strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-10, atol=1e-12)


def test_noise_and_v_target_agree_in_float32():
    s = Schedule()
    rng = np.random.default_rng(0)
    x, eps = rng.standard_normal((4, 80, 16)).astype(np.float32), rng.standard_normal((4, 80, 16)).astype(np.float32)
    t = np.array([0.0, 0.2, 0.7, 1.0], dtype=np.float32)
    z_np, v_np = s.add_noise(x, eps, t), s.v_target(x, eps, t)
    z_pt = s.add_noise(torch.from_numpy(x), torch.from_numpy(eps), torch.from_numpy(t))
    v_pt = s.v_target(torch.from_numpy(x), torch.from_numpy(eps), torch.from_numpy(t))
    np.testing.assert_allclose(z_pt.numpy(), z_np, atol=1e-5)
    np.testing.assert_allclose(v_pt.numpy(), v_np, atol=1e-5)
    # v-prediction identity: x = alpha z - sigma v
    a, sg = s.alpha_sigma(torch.from_numpy(t))
    x_rec = a[:, None, None] * z_pt - sg[:, None, None] * v_pt
    np.testing.assert_allclose(x_rec.numpy(), x, atol=1e-4)
