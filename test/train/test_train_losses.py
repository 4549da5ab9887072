"""SILog and MiDaS invariant losses against hand-computed values; finite gradients under autocast."""

import math

import pytest
import torch

from dpt_train.losses import (
    gradient_matching_loss,
    normalize_median_deviation,
    scale_shift_invariant_loss,
    silog_loss,
    trimmed_absolute_loss,
)


def test_silog_hand_values_with_mask_and_empty_image():
    target = torch.tensor([[[1.0, 2.0, 0.0]], [[4.0, 8.0, 0.0]], [[0.0, 0.0, 0.0]]])
    # image 0: log errors +1, -1 -> mean 0, mean square 1 -> 10 * sqrt(1) = 10
    # image 1: log errors 0.5, 0.5 -> 10 * sqrt(0.25 - 0.85 * 0.25)
    # image 2: no valid pixel -> excluded from the mean; masked pixels hold garbage (0 m)
    prediction = torch.tensor(
        [[[math.e, 2.0 / math.e, 0.0]], [[4.0 * math.exp(0.5), 8.0 * math.exp(0.5), 0.0]], [[5.0, 0.0, 1.0]]]
    )
    loss = silog_loss(prediction, target, target > 0)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx((10.0 + 10.0 * math.sqrt(0.25 * 0.15)) / 2, rel=1e-5)


def test_silog_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        silog_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        silog_loss(torch.ones(1, 2, 3), torch.ones(1, 2, 3), torch.ones(1, 2, 3))


def test_median_deviation_normalisation_hand_values():
    values = torch.tensor([[[1.0, 2.0, 3.0, 10.0, 4.0, 99.0]]])
    mask = torch.tensor([[[True, True, True, True, True, False]]])
    # median 3, |deviations| 2, 1, 0, 7, 1 -> mean 2.2; the masked pixel becomes 0
    expected = torch.tensor([[[-2 / 2.2, -1 / 2.2, 0.0, 7 / 2.2, 1 / 2.2, 0.0]]])
    torch.testing.assert_close(normalize_median_deviation(values, mask), expected)


def test_trimmed_loss_drops_largest_residuals():
    target = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 100.0]]])
    mask = torch.tensor([[[True] * 5 + [False]]])
    # M = 5, floor(0.8 * 5) = 4 smallest residuals 1+2+3+4 kept, divided by 2M
    loss = trimmed_absolute_loss(torch.zeros_like(target), target, mask)
    assert loss.item() == pytest.approx(10.0 / 10.0)


def test_gradient_matching_hand_values():
    residual = torch.arange(16.0).reshape(1, 4, 4)
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    # scale 1: 12 x-pairs of 1 and 12 y-pairs of 4 over 16 pixels; scale 2 ([[0,2],[8,10]]): (2+2+8+8)/4
    loss = gradient_matching_loss(residual, torch.zeros_like(residual), mask, scales=2)
    assert loss.item() == pytest.approx(60 / 16 + 20 / 4)
    small = torch.tensor([[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]])
    holed = torch.tensor([[[True, True, False], [True, True, True]]])
    # x-pairs: only (0,0)-(0,1) and row 1 (zeros); y-pairs: columns 0 and 1 -> (1 + 2 + 1) / 5
    loss = gradient_matching_loss(small, torch.zeros_like(small), holed, scales=1)
    assert loss.item() == pytest.approx(4 / 5)


def test_scale_shift_invariant_loss_hand_value_and_invariance():
    prediction = torch.tensor([[[0.0, 1.0, 5.0]]])
    target = torch.tensor([[[0.0, 1.0, 2.0]]])
    mask = torch.ones(1, 1, 3, dtype=torch.bool)
    # normalised: prediction (x-1)/(5/3) = [-0.6, 0, 2.4], target (x-1)/(2/3) = [-1.5, 0, 1.5];
    # residuals 0.9, 0, 0.9, keep floor(2.4) = 2 smallest -> 0.9 / (2 * 3)
    loss = scale_shift_invariant_loss(prediction, target, mask, gradient_weight=0.0)
    assert loss.item() == pytest.approx(0.15)
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 8, 8, generator=generator) + 0.1
    mask = torch.rand(2, 8, 8, generator=generator) > 0.3
    affine = 3.0 * target + 0.7
    assert scale_shift_invariant_loss(affine, target, mask).item() == pytest.approx(0.0, abs=1e-5)
    noisy = affine + 0.1 * torch.rand(2, 8, 8, generator=generator)
    assert scale_shift_invariant_loss(noisy, target, mask).item() > 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_losses_are_float32_with_finite_gradients_under_autocast(dtype):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 1, 3, padding=1)
    image = torch.rand(2, 3, 16, 16)
    target = torch.rand(2, 16, 16) * 70 + 1.0
    mask = torch.rand(2, 16, 16) > 0.5

    def losses(autocast: bool) -> list[torch.Tensor]:
        with torch.autocast("cpu", dtype=dtype, enabled=autocast):
            depth = torch.nn.functional.softplus(conv(image)).squeeze(1) * 20 + 1e-2
            return [silog_loss(depth, target, mask), scale_shift_invariant_loss(1 / depth, 1 / target, mask)]

    reference = [loss.item() for loss in losses(autocast=False)]
    for loss, expected in zip(losses(autocast=True), reference):
        assert loss.dtype == torch.float32
        conv.zero_grad()
        loss.backward(retain_graph=True)
        assert all(torch.isfinite(p.grad).all() for p in conv.parameters())
        assert loss.item() == pytest.approx(expected, rel=5e-2)
