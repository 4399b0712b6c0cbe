"""PSNR / SSIM against NumPy references written from the formulas; FCN score via the interface."""

import flax.linen as nn
import numpy as np
import pytest

from genattn_jax.data import cityscapes
from genattn_jax.metrics import fcn_score, image_similarity as sim
from genattn_jax.metrics import segmentation


def _ssim_reference(x, y, L=255.0):
  """Wang et al. 2004 Eq. 13 with an 11x11 Gaussian (sigma 1.5), loops over valid windows."""
  g = sim.gaussian_window()
  w = np.outer(g, g)
  c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
  vals = []
  for ch in range(x.shape[-1]):
    for i in range(x.shape[0] - 10):
      for j in range(x.shape[1] - 10):
        px, py = x[i:i + 11, j:j + 11, ch], y[i:i + 11, j:j + 11, ch]
        mx, my = (w * px).sum(), (w * py).sum()
        vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
        cxy = (w * (px - mx) * (py - my)).sum()
        vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
  return np.mean(vals)


def test_psnr_and_ssim_match_references():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (2, 14, 13, 3)).astype(np.float64)
  y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
  mse = ((x - y) ** 2).reshape(2, -1).mean(1)
  np.testing.assert_allclose(sim.psnr(x, y), 10 * np.log10(255 ** 2 / mse), rtol=1e-5)
  np.testing.assert_allclose(sim.ssim(x, y), [_ssim_reference(x[k], y[k]) for k in range(2)],
                             rtol=1e-4)
  np.testing.assert_allclose(sim.ssim(x, x), [1.0, 1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="same shape"):
    sim.psnr(x, y[:, :5])
  with pytest.raises(ValueError, match="smaller"):
    sim.ssim(x[:, :5, :5], y[:, :5, :5])


def test_cityscapes_colours_and_fcn_score_with_small_network(shared_data_dir, tmp_path):
  ids = np.array([[7, 26], [23, 0]], np.uint8)
  np.testing.assert_array_equal(cityscapes.colorize(ids),
                                [[[128, 64, 128], [0, 0, 142]], [[70, 130, 180], [0, 0, 0]]])
  np.testing.assert_array_equal(cityscapes.to_train_ids(ids), [[0, 13], [10, 255]])
  with pytest.raises(ValueError, match="0..33"):
    cityscapes.colorize(np.array([[40]]))
  counts = cityscapes.build_unpaired(str(shared_data_dir / "pairs" / "cityscapes"),
                                     str(tmp_path), image_size=32)
  assert counts == {"train": 8, "test": 8}
  from PIL import Image
  colour = np.asarray(Image.open(sorted((tmp_path / "trainA").glob("*.png"))[0]))
  assert colour.shape == (32, 32, 3)
  assert {tuple(c) for c in colour.reshape(-1, 3)} <= {tuple(c) for c in cityscapes.COLORS}
  # FCN score through the segmentation interface: a 1x1-conv "network" that reads the class
  # from the colour (logit = -distance to each train class's colour) scores the colour label
  # images themselves perfectly.
  train_colours = np.array([cityscapes.LABELS[i][2] for i in range(34)
                            if cityscapes.LABELS[i][1] != 255], np.float32) / 255.0

  class ColourNet(nn.Module):
    @nn.compact
    def __call__(self, x):
      return -((x[..., None, :] - train_colours) ** 2).sum(-1)

  segment_fn = segmentation.make_segment_fn(ColourNet(), {}, mean=(0, 0, 0), std=(1, 1, 1))
  images = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "testA").glob("*"))])
  labels = np.stack([np.asarray(Image.open(p)) for p in
                     sorted((tmp_path / "testA_ids").glob("*"))]).astype(np.int64)
  scores = fcn_score.fcn_score(segment_fn, images, labels, num_classes=19, batch_size=3)
  assert scores["pixel_accuracy"] == pytest.approx(1.0)
  assert scores["mean_iou"] == pytest.approx(1.0)
  assert scores["num_images"] == 8
