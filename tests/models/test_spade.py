"""SPADE generator / encoder / multi-scale discriminator: shapes, structure, KL, D pooling."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.models import spade


def _seg(b, h, w, n=5, seed=0):
  lab = jax.random.randint(jax.random.PRNGKey(seed), (b, h, w), 0, n)
  return jax.nn.one_hot(lab, n)


@pytest.mark.parametrize("mode,h,w", [("normal", 32, 64), ("more", 64, 128), ("most", 128, 128)])
def test_generator_non_square_and_upsampling_modes(mode, h, w):
  g = spade.SPADEGenerator(height=h, width=w, ngf=2, num_upsampling_layers=mode,
                           spade_hidden=4)
  seg = _seg(2, h, w)
  variables = g.init({"params": jax.random.PRNGKey(0)}, seg, train=False)
  (out, kl), _ = g.apply(variables, seg, train=True, mutable=["batch_stats"])
  assert out.shape == (2, h, w, 3) and float(jnp.abs(out).max()) <= 1.0
  assert float(kl) == 0.0
  names = set(variables["params"])
  assert ("up_4" in names) == (mode == "most")
  # Learned shortcut exactly where channels change (16·ngf → 8·ngf in up_0, not in head_0).
  assert "conv_s" in variables["params"]["up_0"] and "conv_s" not in variables["params"]["head_0"]
  # The fc conv reads the label map at the bottom resolution (H, W) / 2^u.
  assert g.bottom_size() == (h // 2 ** spade.NUM_UP[mode], w // 2 ** spade.NUM_UP[mode])
  with pytest.raises(ValueError, match="divisible"):
    spade.SPADEGenerator(height=h + 2, width=w, num_upsampling_layers=mode).bottom_size()


def test_vae_encoder_and_kl():
  g = spade.SPADEGenerator(height=32, width=32, ngf=2, use_vae=True, z_dim=8, spade_hidden=4)
  seg, img = _seg(2, 32, 32), jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 3)) * 2 - 1
  rngs = {"params": jax.random.PRNGKey(0), "sampling": jax.random.PRNGKey(2)}
  v = g.init(rngs, seg, image=img, train=False)
  assert "encoder" in v["params"]
  (out, kl), _ = g.apply(v, seg, None, img, train=True, rngs={"sampling": jax.random.PRNGKey(3)},
                         mutable=["batch_stats"])
  assert out.shape == (2, 32, 32, 3) and float(kl) > 0
  mu, logvar = np.array([[0.5, -1.0]]), np.array([[0.2, -0.3]])
  want = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar))
  np.testing.assert_allclose(float(spade.kl_divergence(jnp.asarray(mu), jnp.asarray(logvar))),
                             want, rtol=1e-6)
  # Without an image the style code is drawn: two keys give two different photos.
  (a, _), _ = g.apply(v, seg, train=False, rngs={"sampling": jax.random.PRNGKey(4)},
                      mutable=["batch_stats"])
  (b, _), _ = g.apply(v, seg, train=False, rngs={"sampling": jax.random.PRNGKey(5)},
                      mutable=["batch_stats"])
  assert float(jnp.abs(a - b).max()) > 0


def test_multiscale_discriminator_features():
  d = spade.MultiscaleDiscriminator(ndf=4, n_layers=4, num_d=2)
  seg, img = _seg(2, 32, 64), jnp.zeros((2, 32, 64, 3))
  v = d.init(jax.random.PRNGKey(0), seg, img, train=False)
  out = d.apply(v, seg, img, train=False)
  assert len(out) == 2 and all(len(o) == 5 for o in out)
  # k4 / pad 2: stride-2 convs give floor(n/2) + 1, the stride-1 ones n + 1.
  assert [f.shape[1:3] for f in out[0]] == [(17, 33), (9, 17), (5, 9), (6, 10), (7, 11)]
  assert out[0][-1].shape[-1] == 1 and out[0][2].shape[-1] == 16
  # The second scale sees the input average-pooled (3x3, stride 2, padding not counted).
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 7, 9, 2))
  want = nn.avg_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)), count_include_pad=False)
  np.testing.assert_allclose(np.asarray(spade.downsample_d_input(x)), np.asarray(want),
                             rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="differ"):
    d.apply(v, seg, jnp.zeros((2, 16, 64, 3)), train=False)
