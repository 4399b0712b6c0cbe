"""The FID variant of InceptionV3 in Flax (NHWC), and its weights as Flax variables.

Source: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision"
(CVPR 2016), Sec. 5-6 and Fig. 5-7 / Table 1, in the form of the TensorFlow graph
`inception-2015-12-05` that Heusel et al. (NeurIPS 2017, "GANs trained by a two
time-scale update rule...") used for FID, as ported by pytorch-fid. It differs from
torchvision's InceptionV3 in ways that change the features:

* the average pools inside the A and C blocks and the first E block (`Mixed_7b`)
  ignore the zero padding when averaging (PyTorch `count_include_pad=False`);
* the last E block (`Mixed_7c`) pools its fourth branch with a 3x3 max pool, not an
  average pool;
* batch norm has epsilon 1e-3 and, in the TensorFlow graph, no learned scale;
* the classifier has 1008 outputs (1000 ImageNet classes plus 8 unused) and no
  auxiliary head.

The network takes [B, 299, 299, 3] inputs in [-1, 1] (pytorch-fid's `2 * x - 1` of
[0, 1] images; see `preprocess.py`) and returns the 2048-d global-average-pool
features (`pool_3` in TensorFlow) and, when built with `num_classes`, the logits.

Batch norm can be folded into the conv kernels at load time (`fold_bn=True`, the
default): kernel' = kernel * s and bias = beta - mean * s with
s = scale / sqrt(var + 1e-3), computed in float64. The folded network matches the
unfolded one to ~1e-5 on the pool features and runs faster.
"""

import functools
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

BN_EPSILON = 1e-3
NUM_CLASSES = 1008
POOL_FEATURES = 2048
PrecisionLike = Any


class BasicConv(nn.Module):
  """Conv (no bias) + batch norm (eps 1e-3, running statistics) + ReLU.

  With `fold_bn=True` the batch norm is already folded into the conv, which then has a
  bias. `padding` is symmetric zero padding (rows, cols), like PyTorch's `padding`.
  """
  features: int
  kernel_size: Tuple[int, int]
  strides: Tuple[int, int] = (1, 1)
  padding: Tuple[int, int] = (0, 0)
  fold_bn: bool = True
  conv: Callable[..., nn.Module] = Conv
  precision: PrecisionLike = jax.lax.Precision.HIGHEST
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    y = self.conv(
        features=self.features, kernel_size=self.kernel_size, strides=self.strides,
        padding=((ph, ph), (pw, pw)), use_bias=self.fold_bn, precision=self.precision,
        dtype=self.dtype, param_dtype=self.param_dtype, name="conv")(x)
    if not self.fold_bn:
      y = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, dtype=self.dtype,
                       param_dtype=self.param_dtype, name="bn")(y)
    return nn.relu(y)


def _avg_pool_excluding_pad(x: jax.Array) -> jax.Array:
  """3x3, stride 1, pad 1 average that divides by the number of in-image pixels."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


class _Block(nn.Module):
  """Shared fields of the Inception blocks."""
  fold_bn: bool = True
  conv: Callable[..., nn.Module] = Conv
  precision: PrecisionLike = jax.lax.Precision.HIGHEST
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  def basic(self, features, kernel_size, name, strides=(1, 1), padding=(0, 0)) -> BasicConv:
    return BasicConv(features, kernel_size, strides, padding, fold_bn=self.fold_bn,
                     conv=self.conv, precision=self.precision, dtype=self.dtype,
                     param_dtype=self.param_dtype, name=name)


class InceptionA(_Block):
  """35x35 block (Fig. 5): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(excl. pad)-1x1."""
  pool_features: int = 32

  @nn.compact
  def __call__(self, x):
    b1 = self.basic(64, (1, 1), "branch1x1")(x)
    b5 = self.basic(48, (1, 1), "branch5x5_1")(x)
    b5 = self.basic(64, (5, 5), "branch5x5_2", padding=(2, 2))(b5)
    b3 = self.basic(64, (1, 1), "branch3x3dbl_1")(x)
    b3 = self.basic(96, (3, 3), "branch3x3dbl_2", padding=(1, 1))(b3)
    b3 = self.basic(96, (3, 3), "branch3x3dbl_3", padding=(1, 1))(b3)
    bp = self.basic(self.pool_features, (1, 1), "branch_pool")(_avg_pool_excluding_pad(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
  """35x35 -> 17x17 grid reduction (Fig. 10): 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2."""

  @nn.compact
  def __call__(self, x):
    b3 = self.basic(384, (3, 3), "branch3x3", strides=(2, 2))(x)
    bd = self.basic(64, (1, 1), "branch3x3dbl_1")(x)
    bd = self.basic(96, (3, 3), "branch3x3dbl_2", padding=(1, 1))(bd)
    bd = self.basic(96, (3, 3), "branch3x3dbl_3", strides=(2, 2))(bd)
    bp = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(_Block):
  """17x17 block with factorised 7x7 convs (Fig. 6), avg pool excluding padding."""
  channels_7x7: int = 128

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = self.basic(192, (1, 1), "branch1x1")(x)
    b7 = self.basic(c7, (1, 1), "branch7x7_1")(x)
    b7 = self.basic(c7, (1, 7), "branch7x7_2", padding=(0, 3))(b7)
    b7 = self.basic(192, (7, 1), "branch7x7_3", padding=(3, 0))(b7)
    bd = self.basic(c7, (1, 1), "branch7x7dbl_1")(x)
    bd = self.basic(c7, (7, 1), "branch7x7dbl_2", padding=(3, 0))(bd)
    bd = self.basic(c7, (1, 7), "branch7x7dbl_3", padding=(0, 3))(bd)
    bd = self.basic(c7, (7, 1), "branch7x7dbl_4", padding=(3, 0))(bd)
    bd = self.basic(192, (1, 7), "branch7x7dbl_5", padding=(0, 3))(bd)
    bp = self.basic(192, (1, 1), "branch_pool")(_avg_pool_excluding_pad(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
  """17x17 -> 8x8 grid reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""

  @nn.compact
  def __call__(self, x):
    b3 = self.basic(192, (1, 1), "branch3x3_1")(x)
    b3 = self.basic(320, (3, 3), "branch3x3_2", strides=(2, 2))(b3)
    b7 = self.basic(192, (1, 1), "branch7x7x3_1")(x)
    b7 = self.basic(192, (1, 7), "branch7x7x3_2", padding=(0, 3))(b7)
    b7 = self.basic(192, (7, 1), "branch7x7x3_3", padding=(3, 0))(b7)
    b7 = self.basic(192, (3, 3), "branch7x7x3_4", strides=(2, 2))(b7)
    bp = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(_Block):
  """8x8 block with expanded 1x3/3x1 outputs (Fig. 7).

  `pool` is 'avg' (average excluding padding; `Mixed_7b`) or 'max' (3x3 stride-1 max
  pool; `Mixed_7c`) — the two FID-specific variants.
  """
  pool: str = "avg"

  @nn.compact
  def __call__(self, x):
    _checks.check_in(self.pool, ("avg", "max"), "pool")
    b1 = self.basic(320, (1, 1), "branch1x1")(x)
    b3 = self.basic(384, (1, 1), "branch3x3_1")(x)
    b3 = jnp.concatenate([
        self.basic(384, (1, 3), "branch3x3_2a", padding=(0, 1))(b3),
        self.basic(384, (3, 1), "branch3x3_2b", padding=(1, 0))(b3)], axis=-1)
    bd = self.basic(448, (1, 1), "branch3x3dbl_1")(x)
    bd = self.basic(384, (3, 3), "branch3x3dbl_2", padding=(1, 1))(bd)
    bd = jnp.concatenate([
        self.basic(384, (1, 3), "branch3x3dbl_3a", padding=(0, 1))(bd),
        self.basic(384, (3, 1), "branch3x3dbl_3b", padding=(1, 0))(bd)], axis=-1)
    if self.pool == "avg":
      pooled = _avg_pool_excluding_pad(x)
    else:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    bp = self.basic(192, (1, 1), "branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """InceptionV3 as used for FID (TensorFlow 2015-12-05 graph, pytorch-fid's port).

  Attributes:
    num_classes: None for features only, or 1008 for the classifier logits that the
      Inception Score uses (only pytorch-fid's .pth has them).
    fold_bn: batch norm folded into the convs (params `conv.kernel`, `conv.bias`) or
      kept (`conv.kernel`, `bn.scale`, `bn.bias` and `batch_stats` `bn.mean`, `bn.var`).
    conv: conv module constructor. The default, `layers.conv.Conv`, is `nn.Conv` with the
      same parameters; on a one-device CPU backend it runs the 1x1 convolutions as matmuls
      (`layers.conv.pointwise`, 3-5x faster there) and the others as XLA's convolution.
      `nn.Conv` gives XLA's convolution everywhere.
    precision: precision of the convs and the classifier; HIGHEST keeps float32 math on
      accelerators whose default uses reduced-precision matmuls.
    dtype: computation dtype (None: float32 from the parameters).
    param_dtype: parameter dtype.
  """
  num_classes: Optional[int] = None
  fold_bn: bool = True
  conv: Callable[..., nn.Module] = Conv
  precision: PrecisionLike = jax.lax.Precision.HIGHEST
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> Dict[str, jax.Array]:
    """Runs the network.

    Args:
      x: [B, H, W, 3] float, values in [-1, 1]; H, W = 299 for FID (any H, W >= 75
        works; the final pooling is a global mean like pytorch-fid's adaptive pool).

    Returns:
      {'pool': [B, 2048] features after the global average pool, dtype of the
      computation} plus {'logits': [B, 1008]} when `num_classes` is set.

    Raises:
      ValueError: `x` is not [B, H, W, 3] or H or W < 75.
    """
    _, h, w, c = _checks.check_nhwc(x, "x")
    if c != 3:
      raise ValueError(f"`x` must have 3 channels [B, H, W, 3], got shape {x.shape}.")
    if min(h, w) < 75:
      raise ValueError(f"`x` must be at least 75x75 (299x299 for FID), got {h}x{w}.")
    kw = dict(fold_bn=self.fold_bn, conv=self.conv, precision=self.precision,
              dtype=self.dtype, param_dtype=self.param_dtype)
    basic = functools.partial(BasicConv, **kw)
    x = basic(32, (3, 3), strides=(2, 2), name="Conv2d_1a_3x3")(x)
    x = basic(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = basic(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    x = basic(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = basic(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    x = InceptionA(pool_features=32, name="Mixed_5b", **kw)(x)
    x = InceptionA(pool_features=64, name="Mixed_5c", **kw)(x)
    x = InceptionA(pool_features=64, name="Mixed_5d", **kw)(x)
    x = InceptionB(name="Mixed_6a", **kw)(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                     ("Mixed_6e", 192)):
      x = InceptionC(channels_7x7=c7, name=name, **kw)(x)
    x = InceptionD(name="Mixed_7a", **kw)(x)
    x = InceptionE(pool="avg", name="Mixed_7b", **kw)(x)
    x = InceptionE(pool="max", name="Mixed_7c", **kw)(x)
    pool = jnp.mean(x, axis=(1, 2))
    out = {"pool": pool}
    if self.num_classes is not None:
      out["logits"] = nn.Dense(self.num_classes, precision=self.precision, dtype=self.dtype,
                               param_dtype=self.param_dtype, name="fc")(pool)
    return out


# --------------------------------------------------------------------------------------
# pytorch-fid state dict -> Flax variables.

def _set(tree: Dict[str, Any], path: Tuple[str, ...], value: np.ndarray) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def variables_from_state_dict(state_dict: Mapping[str, np.ndarray], *, fold_bn: bool = True,
                              param_dtype: jnp.dtype = jnp.float32) -> Dict[str, Any]:
  """Converts a pytorch-fid state dict (NumPy, PyTorch layouts) to Flax variables.

  Conv kernels go from [O, I, kh, kw] to [kh, kw, I, O]; `fc.weight` [1008, 2048] to
  a Dense kernel [2048, 1008]. With `fold_bn`, each batch norm (eps 1e-3) is folded
  into its conv in float64 before the cast to `param_dtype`.

  Args:
    state_dict: `<module>.conv.weight`, `<module>.bn.{weight,bias,running_mean,
      running_var}` per conv, optionally `fc.weight`, `fc.bias`.
    fold_bn: fold batch norm (for `FIDInceptionV3(fold_bn=True)`).
    param_dtype: dtype of the returned arrays.

  Returns:
    {'params': ...} (plus {'batch_stats': ...} when not folding) as NumPy arrays.

  Raises:
    ValueError: a conv lacks one of its batch-norm entries.
  """
  params, stats = {}, {}
  for key in state_dict:
    if not key.endswith(".conv.weight"):
      continue
    mod = tuple(key[:-len(".conv.weight")].split("."))
    try:
      w = np.asarray(state_dict[key], np.float64)
      bn = {n: np.asarray(state_dict[".".join(mod) + ".bn." + n], np.float64)
            for n in ("weight", "bias", "running_mean", "running_var")}
    except KeyError as e:
      raise ValueError(f"`state_dict` lacks {e} for the conv {key!r}.") from e
    kernel = w.transpose(2, 3, 1, 0)
    if fold_bn:
      s = bn["weight"] / np.sqrt(bn["running_var"] + BN_EPSILON)
      _set(params, mod + ("conv", "kernel"), (kernel * s).astype(param_dtype))
      _set(params, mod + ("conv", "bias"),
           (bn["bias"] - bn["running_mean"] * s).astype(param_dtype))
    else:
      _set(params, mod + ("conv", "kernel"), kernel.astype(param_dtype))
      _set(params, mod + ("bn", "scale"), bn["weight"].astype(param_dtype))
      _set(params, mod + ("bn", "bias"), bn["bias"].astype(param_dtype))
      _set(stats, mod + ("bn", "mean"), bn["running_mean"].astype(param_dtype))
      _set(stats, mod + ("bn", "var"), bn["running_var"].astype(param_dtype))
  if "fc.weight" in state_dict:
    params["fc"] = {"kernel": np.asarray(state_dict["fc.weight"]).T.astype(param_dtype),
                    "bias": np.asarray(state_dict["fc.bias"]).astype(param_dtype)}
  out = {"params": params}
  if not fold_bn:
    out["batch_stats"] = stats
  return out


def check_variables(module: FIDInceptionV3, variables: Mapping[str, Any]) -> None:
  """Raises ValueError unless `variables` has exactly the module's names and shapes."""
  expected = jax.eval_shape(module.init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32))
  want = {jax.tree_util.keystr(k): tuple(v.shape)
          for k, v in jax.tree_util.tree_leaves_with_path(expected)}
  got = {jax.tree_util.keystr(k): tuple(np.shape(v))
         for k, v in jax.tree_util.tree_leaves_with_path(dict(variables))}
  if want != got:
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
    raise ValueError(f"`variables` do not fit {type(module).__name__}: missing {missing}, "
                     f"unexpected {extra}, wrong shapes {wrong}.")
