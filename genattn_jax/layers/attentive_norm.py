"""Attentive Normalization (AN) of Wang et al., "Attentive Normalization for
Conditional Image Generation" (CVPR 2020), Sec. 3, Eqs. 1-6.

AN predicts a soft semantic layout `S` of `n` regions from the feature map and
normalizes every region separately (a soft, region-wise instance norm), so that
distant pixels with the same semantics share statistics. Its cost is linear in
the number of pixels (O(n * B * H * W * C), Sec. 3.4): no HW x HW matrix is ever
formed, which is what lets it run on 1024 x 1024 feature maps.

Public names:
  * `AttentiveNormalization`: the module, `(x, train=False) -> same shape`.
  * `regional_instance_norm`: Eq. 5 as a pure function of `x` and a layout.
  * `orthogonal_regularization`: Eq. 1 for one AN (params subtree or kernel).
  * `orthogonal_penalty`: Eq. 1 summed over every AN inside any param tree.
  * `ENTITY_CONV_NAME`: the submodule name that identifies an AN's entities.
"""

from typing import Any, Callable, List, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax._checks import check_nhwc, check_positive, check_rank
from genattn_jax._dtypes import wide
from genattn_jax._parallel import global_rows, own_rows
from genattn_jax.layers.conv import Conv

# Name of the n-filter entity conv inside every AttentiveNormalization; the
# penalty helpers find ANs in an arbitrary parameter tree by this name.
ENTITY_CONV_NAME = "semantic_entities"


def regional_instance_norm(x: jax.Array,
                           layout: jax.Array,
                           beta: jax.Array,
                           alpha: jax.Array,
                           epsilon: float = 1e-5) -> jax.Array:
  """Regional instance normalization, Eq. 5 of the AN paper (Sec. 3.3).

  For each region i with soft mask `S_i = layout[..., i]` the per-example,
  per-channel statistics are the mask-weighted mean and standard deviation

    mu_i    = sum_p S_i(p) x(p) / sum_p S_i(p)
    sigma_i = sqrt(sum_p S_i(p) (x(p) - mu_i)^2 / sum_p S_i(p))

  (our reading of mu(X_{S_i}) and sigma(X_{S_i}); Fig. 3's caption: "each mean and variance
  are computed on the feature points of the same color"), and the output is

    x_bar = sum_i ((x - mu_i) / (sigma_i + epsilon) * beta_i + alpha_i) * S_i.

  The sum over regions is evaluated in factored form
  `x * (S @ a) + S @ b` with `a = beta / (sigma + eps)` and
  `b = alpha - mu * a`, so memory is O(B*H*W*(C + n)) and no [B, H, W, n, C]
  tensor is built. Statistics are taken in float32 after subtracting the plain
  spatial mean (a shift that leaves Eq. 5 unchanged but avoids cancellation).
  Precision: this one-pass variance has an absolute error of about
  1e-7 * (mu_i - spatial mean)^2, so the sigma of a region that is nearly
  constant (variance below that) and whose mean is far from the map's mean is
  not resolved (measured: a region with sigma 1e-5 and mean 0.3 away from the
  map's mean gives outputs off by up to 0.6).

  Args:
    x: [B, H, W, C] features, any float dtype.
    layout: [B, H, W, n] soft masks, values in [0, 1] (rows need not sum to 1
      for the formula, though AN's softmax layout does).
    beta: [n, C] per-region scale (paper's beta_i, initialised to 1 in AN).
    alpha: [n, C] per-region shift (paper's alpha_i, initialised to 0 in AN).
    epsilon: > 0, added to sigma (not to the variance), as in Eq. 5.

  Returns:
    [B, H, W, C] float32 normalized map `x_bar`.

  Raises:
    ValueError: if `x` or `layout` is not rank 4, their B, H, W differ,
      `beta`/`alpha` are not [n, C], or `epsilon` <= 0.
  """
  b, h, w, c = check_nhwc(x, "x")
  lb, lh, lw, n = check_nhwc(layout, "layout")
  if (lb, lh, lw) != (b, h, w):
    raise ValueError(f"`layout` must be [B, H, W, n] with B, H, W of `x` "
                     f"{(b, h, w)}, got shape {tuple(layout.shape)}.")
  for arr, name in ((beta, "beta"), (alpha, "alpha")):
    check_rank(arr, 2, name, "[n, C]")
    if tuple(arr.shape) != (n, c):
      raise ValueError(f"`{name}` must have shape [n, C] = {(n, c)}, got "
                       f"{tuple(arr.shape)}.")
  check_positive(epsilon, "epsilon")

  xf = wide(x).reshape(b, h * w, c)
  s = layout.astype(xf.dtype).reshape(b, h * w, n)
  xc = xf - jnp.mean(xf, axis=1, keepdims=True)
  mass = jnp.sum(s, axis=1)[..., None]  # [B, n, 1]
  # Guards against an entity with (numerically) no pixels; such a region
  # contributes nothing to the output because it is multiplied by S_i ~ 0.
  mass = jnp.maximum(mass, 1e-12)
  mean = jnp.einsum("bpn,bpc->bnc", s, xc) / mass
  mean_sq = jnp.einsum("bpn,bpc->bnc", s, xc * xc) / mass
  var = jnp.maximum(mean_sq - mean * mean, 0.0)
  # Floor keeps d(sqrt)/d(var) finite for a constant region.
  sigma = jnp.sqrt(jnp.maximum(var, 1e-12))
  scale = beta.astype(jnp.float32)[None] / (sigma + epsilon)  # [B, n, C]
  shift = alpha.astype(jnp.float32)[None] - mean * scale  # [B, n, C]
  out = (xc * jnp.einsum("bpn,bnc->bpc", s, scale)
         + jnp.einsum("bpn,bnc->bpc", s, shift))
  return out.reshape(b, h, w, c)


class AttentiveNormalization(nn.Module):
  """Attentive Normalization, Sec. 3 (Eqs. 2-6) and Fig. 2 of the AN paper.

  With input `X` ([B, H, W, C]) the module computes

    f(X)   = semantic_entities(X)                  # n-filter conv, [B,H,W,n]
    F[j,i] = k_s(X)_i . q(X)_j                      # Eq. 2, train only
    S_raw  = t * F + f(X)                           # Eq. 3, t: [n], init 0.1
    S      = softmax_over_n(temperature * S_raw)    # Eq. 4
    X_bar  = regional_instance_norm(X, S, beta, alpha, epsilon)   # Eq. 5
    AN(X)  = rho * X_bar + X                        # Eq. 6, rho init 0

  Self-sampling (Eq. 2): `k` and `q` are 1x1 convs to `qk_features` channels;
  `k(X)` is max-pooled (`pool_window` x `pool_window`, stride `pool_window`,
  'SAME'), and for every example `n` pooled positions are drawn uniformly at
  random (without replacement; with replacement only if the pooled map has
  fewer than `n` positions) from the `'sampling'` rng stream. Their key
  vectors act as `n` fast "entity" filters against `q(X)` at every pixel.
  At evaluation (`train=False`) the branch is switched off (t = 0, Sec. 4), so
  the output is deterministic and no rng is needed. Under `pmap` with
  `axis_name` set, every device draws the random numbers of the whole global
  batch from the (replicated) rng and keeps the rows of its own examples, so
  the positions equal those of one device running the global batch.

  Conventions chosen where the paper is open:
    * Temperature multiplies the logits, as written in Eq. 4:
      `softmax(temperature * S_raw)`; the default 0.1 is the paper's tau and
      equals the released code's division by 10.
    * mu/sigma in Eq. 5 are the mask-weighted regional mean and standard
      deviation (see `regional_instance_norm`); epsilon is added to sigma.
    * Eq. 1 says W is [n, c] (a 1x1 conv); `entity_kernel_size` > 1 is allowed
      and W is then the kernel reshaped to [n, k*k*C].
    * The entity conv has no bias (entities are pure inner products, Sec. 3.1);
      key/query convs have a bias. `t` is not clipped.
    * Eq. 1's weight lambda_o is not part of the module: the trainer adds
      `lambda_o * orthogonal_penalty(params)` (the paper gives no value; the
      released code uses 1e-3).

  Differences of the released TensorFlow code (dvlab-research/AttenNorm,
  inpainting model) from the paper, which this module does NOT follow (the code
  behind the paper's class-conditional numbers, Tables 1-2, is not the released
  one, so for the library's class-conditional use the paper's equations rule):
  it normalizes a 1x1-conv "value" map v(X) instead of X; it has no per-region
  affine beta/alpha; its regional mean divides the masked sum by both H*W and
  the mask mass, and its variance sums the squared deviation of the masked map
  (zeros outside the region included) over all pixels; positions are sampled
  with replacement, once for the whole batch, from the un-pooled key map; t is
  clipped to [0, 1]; the orthogonality loss sums the entries of W W^T - I
  instead of their squares; epsilon is 1e-7.

  Parameters (under the module's scope):
    `semantic_entities`: the n-filter conv (kernel [k, k, C, n], no bias).
    `key`, `query`: 1x1 convs C -> `qk_features`.
    `t`: [n], init 0.1.  `beta`: [n, C], init 1.  `alpha`: [n, C], init 0.
    `rho`: [] scalar, init 0 (so AN is the identity at initialisation).
  Intermediates (collection `'intermediates'`, when mutable):
    `semantic_layout`: [B, H, W, n] float32 soft layout S.
    `sample_indices`: [B, n] int32 flat indices into the pooled key map
      (train only).

  Attributes:
    num_entities: n, number of semantic entities / regions (paper: 16).
    temperature: tau of Eq. 4 (> 0, multiplies the logits; paper: 0.1).
    epsilon: added to the regional standard deviation in Eq. 5 (> 0).
    qk_features: channels of k(X) and q(X); None -> max(1, C // 8) as in the
      released code (the paper does not say).
    pool_window: max-pool window and stride applied to k(X) before sampling
      (the paper says "max-pooling" without size; 2 as in SA-GAN).
    entity_kernel_size: spatial size of the entity conv (Eq. 1: 1).
    t_init: initial value of t (Eq. 3: 0.1).
    conv: conv constructor for the entity/key/query convs, called as
      `conv(features=..., kernel_size=..., use_bias=..., padding='SAME',
      dtype=..., param_dtype=..., name=...)` (e.g. a spectral-norm conv).
    dtype: computation dtype of the convs and of the output (None: promoted
      from the input and `param_dtype`). Layout and statistics use float32.
    param_dtype: dtype of all parameters.
    axis_name: pmap axis the batch is split over (None: not split). Only
      the self-sampling draw uses it (see above); AN has no batch statistics.
  """
  num_entities: int = 16
  temperature: float = 0.1
  epsilon: float = 1e-5
  qk_features: Optional[int] = None
  pool_window: int = 2
  entity_kernel_size: int = 1
  t_init: float = 0.1
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Applies AN (Eq. 6).

    Args:
      x: [B, H, W, C] float features (any H, W >= 1; B >= 1).
      train: if True the self-sampling branch is on and the `'sampling'` rng
        is required (`rngs={'sampling': key}`, also at `init`); if False the
        branch is off (t = 0) and the result is deterministic.

    Returns:
      [B, H, W, C] array `rho * X_bar + x` in `dtype` (see class doc).

    Raises:
      ValueError: if `x` is not [B, H, W, C]; if a size field is not positive;
        if `train` is True and no `'sampling'` rng was given.
    """
    b, h, w, c = check_nhwc(x, "x")
    check_positive(self.num_entities, "num_entities")
    check_positive(self.temperature, "temperature")
    check_positive(self.epsilon, "epsilon")
    check_positive(self.pool_window, "pool_window")
    check_positive(self.entity_kernel_size, "entity_kernel_size")
    if self.qk_features is not None:
      check_positive(self.qk_features, "qk_features")
    if train and not self.has_rng("sampling"):
      raise ValueError("AttentiveNormalization with `train=True` needs the "
                       "'sampling' rng: pass rngs={'sampling': key}.")
    n = self.num_entities
    d = self.qk_features if self.qk_features is not None else max(1, c // 8)
    out_dtype = self.dtype or jnp.promote_types(x.dtype, self.param_dtype)
    conv_kw = dict(padding="SAME", dtype=self.dtype,
                   param_dtype=self.param_dtype)

    k = self.entity_kernel_size
    f = self.conv(features=n, kernel_size=(k, k), use_bias=False,
                  name=ENTITY_CONV_NAME, **conv_kw)(x)
    s_raw = wide(f)
    t = self.param("t", nn.initializers.constant(self.t_init), (n,),
                   self.param_dtype)

    # The key/query convs are created at init even with train=False, so the
    # same variables serve both modes.
    if train or self.is_initializing():
      key = self.conv(features=d, kernel_size=(1, 1), use_bias=True,
                      name="key", **conv_kw)(x)
      query = self.conv(features=d, kernel_size=(1, 1), use_bias=True,
                        name="query", **conv_kw)(x)
      if train:
        fast = _self_sampling_activation(
            wide(key), wide(query),
            n, self.pool_window, self.make_rng("sampling"), self.sow,
            self.axis_name)
        s_raw = s_raw + wide(t) * fast

    layout = jax.nn.softmax(self.temperature * s_raw, axis=-1)
    self.sow("intermediates", "semantic_layout", layout)

    beta = self.param("beta", nn.initializers.ones, (n, c), self.param_dtype)
    alpha = self.param("alpha", nn.initializers.zeros, (n, c),
                       self.param_dtype)
    rho = self.param("rho", nn.initializers.zeros, (), self.param_dtype)
    x_bar = regional_instance_norm(x, layout, beta, alpha, self.epsilon)
    out = wide(rho) * x_bar + wide(x)
    return out.astype(out_dtype)


def _self_sampling_activation(key: jax.Array, query: jax.Array, n: int,
                              pool_window: int, rng: jax.Array,
                              sow: Callable[..., Any],
                              axis_name: Optional[str] = None) -> jax.Array:
  """Eq. 2: activations of q(X) against n key vectors sampled per example.

  Args:
    key: [B, H, W, d] float32 k(X).
    query: [B, H, W, d] float32 q(X).
    n: number of positions to sample.
    pool_window: max-pool window/stride applied to `key` first.
    rng: PRNG key of the 'sampling' stream.
    sow: the module's `sow`, to record the sampled indices.
    axis_name: pmap axis of the batch: draw for all devices' examples and
      keep this device's rows (the draw of one device on the global batch).

  Returns:
    [B, H, W, n] float32 activation map F.
  """
  if pool_window > 1:
    key = nn.max_pool(key, (pool_window, pool_window),
                      strides=(pool_window, pool_window), padding="SAME")
  b, ph, pw, d = key.shape
  num_pos = ph * pw
  flat = key.reshape(b, num_pos, d)
  rows = global_rows(b, axis_name)
  if num_pos >= n:
    # Uniform sampling without replacement: the n largest of i.i.d. uniforms.
    _, idx = jax.lax.top_k(own_rows(jax.random.uniform(rng, (rows, num_pos)), b, axis_name), n)
  else:
    idx = own_rows(jax.random.randint(rng, (rows, n), 0, num_pos), b, axis_name)
  idx = idx.astype(jnp.int32)
  sow("intermediates", "sample_indices", idx)
  filters = jnp.take_along_axis(flat, idx[..., None], axis=1)  # [B, n, d]
  return jnp.einsum("bhwd,bnd->bhwn", query, filters)


def _entity_matrix(kernel: jax.Array) -> jax.Array:
  """Flax kernel [..., n] (e.g. conv [k, k, C, n]) -> W [n, prod(...)]."""
  return jnp.reshape(kernel, (-1, kernel.shape[-1])).T


def _find_kernels(tree: Mapping[str, Any], out: List[jax.Array]) -> None:
  for name, value in tree.items():
    if isinstance(value, Mapping):
      _find_kernels(value, out)
    elif name == "kernel":
      out.append(value)


def orthogonal_regularization(params_or_kernel: Any) -> jax.Array:
  """Orthogonality loss of the semantic entities, Eq. 1 without lambda_o.

  Computes `||W W^T - I||_F^2` with W the [n, k*k*C] matrix whose rows are the
  n entity filters (the entity conv kernel [k, k, C, n] reshaped, Flax layout).
  It is 0 exactly when the entity filters are orthonormal (only reachable when
  n <= k*k*C). Multiply by the weight lambda_o yourself.

  Args:
    params_or_kernel: one of
      * an AttentiveNormalization's params subtree (the mapping that holds
        `semantic_entities`, as in `variables['params']['my_an']`), or
        `{'params': that}`;
      * the `semantic_entities` subtree itself (the one `kernel` leaf inside it
        is used, however deeply nested, e.g. under a spectral-norm wrapper;
        the raw, un-normalized kernel is penalized);
      * a kernel array of rank >= 2 whose last axis is n (Flax layout).

  Returns:
    float32 scalar.

  Raises:
    ValueError: if a kernel has rank < 2, or a mapping does not hold exactly
      one `kernel` leaf for the entities.
  """
  value = params_or_kernel
  if isinstance(value, Mapping):
    if ENTITY_CONV_NAME not in value and set(value.keys()) == {"params"}:
      value = value["params"]
    if ENTITY_CONV_NAME in value:
      value = value[ENTITY_CONV_NAME]
    kernels: List[jax.Array] = []
    if isinstance(value, Mapping):
      _find_kernels(value, kernels)
    else:
      kernels.append(value)
    if len(kernels) != 1:
      raise ValueError(
          "`params_or_kernel` must be an AttentiveNormalization params subtree "
          f"(holding '{ENTITY_CONV_NAME}'), that conv's subtree, or a kernel; "
          f"found {len(kernels)} 'kernel' leaves.")
    value = kernels[0]
  if jnp.ndim(value) < 2:
    raise ValueError("`params_or_kernel` kernel must have rank >= 2 with the "
                     f"entities on the last axis, got shape "
                     f"{tuple(jnp.shape(value))}.")
  w = _entity_matrix(wide(value))
  gram = w @ w.T - jnp.eye(w.shape[0], dtype=w.dtype)
  return jnp.sum(gram * gram)


def orthogonal_penalty(params: Mapping[str, Any]) -> jax.Array:
  """Sum of Eq. 1 over every AttentiveNormalization in a parameter tree.

  ANs are found by their entity-conv submodule name (`ENTITY_CONV_NAME`,
  'semantic_entities'), so the AN modules themselves may have any name and
  sit at any depth (e.g. a whole generator's params). Use as
  `g_loss + lambda_o * orthogonal_penalty(g_params)`.

  Args:
    params: a (nested) mapping of parameters, e.g. `variables['params']` or the
      full `variables` dict; FrozenDict and dict both work.

  Returns:
    float32 scalar; 0.0 when the tree contains no AN.

  Raises:
    ValueError: if `params` is not a mapping, or an entity subtree does not
      hold exactly one `kernel`.
  """
  if not isinstance(params, Mapping):
    raise ValueError(f"`params` must be a mapping of parameters, got "
                     f"{type(params).__name__}.")
  total = jnp.zeros((), jnp.float32)
  stack = [params]
  while stack:
    tree = stack.pop()
    for name, value in tree.items():
      if name == ENTITY_CONV_NAME:
        total = total + orthogonal_regularization(value)
      elif isinstance(value, Mapping):
        stack.append(value)
  return total
