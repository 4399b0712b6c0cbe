"""Placing the papers' blocks inside the GAN backbones, driven by configs.

A placement is a small record `{'block': NAME, 'resolutions': [r, ...],
**block_kwargs}` that says: "after the backbone stage whose output feature map
has spatial size r x r, insert the block NAME built with `block_kwargs`". The
generator and discriminator each take a sequence of them (`g_blocks`,
`d_blocks` in the model config), so every paper's experiment is a config:

  * LAP (all generator stages above 4x4):
    `{'block': 'lap', 'resolutions': [8, 16, 32]}`
  * SPAP (SNDCGAN-128 generator, after the 64x64 map, Sec. 4.3 of the SPAP
    paper): `{'block': 'spap', 'resolutions': [64], 'rates': [3, 5, 7]}`
  * SAGAN-style self-attention: `{'block': 'self_attention', 'resolutions': [32]}`
  * AN: `{'block': 'an', 'resolutions': [32]}`

Block names and the classes they build (imported lazily, so a backbone without
blocks never imports `genattn_jax.layers`):

  =================  ==================================================
  'lap'              `layers.lap.LAPBlock` (residual LAP, Fig. 2)
  'spap'             `layers.spap.SpatialPyramidAttentivePooling`
  'aspp'             `layers.aspp.ASPP` (the SPAP paper's baseline)
  'an'               `layers.attentive_norm.AttentiveNormalization`
  'self_attention'   `layers.self_attention.SelfAttention` (SAGAN)
  'memory_efficient_self_attention'
                     `layers.self_attention.MemoryEfficientSelfAttention`
  'cbam'             `layers.cbam.CBAM`
  'none'             identity (keeps a config slot without a block)
  =================  ==================================================

Every block maps `[B, H, W, C] -> [B, H, W, C]`. Inside a backbone with
spectral norm (always D in the papers, G too when `g_spectral_norm`), blocks
that expose a `conv` field get `SpectralConv` and those with a `dense` field
(CBAM) `SpectralDense`, unless the placement sets them itself, as in SAGAN /
SNGAN where every weight of a spectrally-normalised network is. `dtype` / `param_dtype` are forwarded when the block has
those fields. AN is called as `block(x, train)` (it draws the `'sampling'`
rng in training); every other block as `block(x)`, except ASPP, which is given
`use_running_average=not train` only when it has a norm layer.

With `remat=True` (model config `remat_blocks`) every placed block is wrapped in
`nn.remat`: its activations are not kept for the backward pass but recomputed from the
block's input, trading one more forward pass of the block for the memory of its
intermediates (the [B, HW, HW/4] attention maps of self-attention, LAP's pooled pyramids,
AN's [B, HW, n] layouts). Parameter names and values, outputs and gradients are unchanged.
"""

import dataclasses
import importlib
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax._dtypes import wide

# name -> (module path, class name)
BLOCKS: Dict[str, Tuple[str, str]] = {
    "lap": ("genattn_jax.layers.lap", "LAPBlock"),
    "spap": ("genattn_jax.layers.spap", "SpatialPyramidAttentivePooling"),
    "aspp": ("genattn_jax.layers.aspp", "ASPP"),
    "an": ("genattn_jax.layers.attentive_norm", "AttentiveNormalization"),
    "self_attention": ("genattn_jax.layers.self_attention", "SelfAttention"),
    "memory_efficient_self_attention": ("genattn_jax.layers.self_attention",
                                        "MemoryEfficientSelfAttention"),
    "cbam": ("genattn_jax.layers.cbam", "CBAM"),
    "none": ("", ""),
}
BLOCK_NAMES: Tuple[str, ...] = tuple(BLOCKS)


class BlockPlacement(NamedTuple):
  """A validated, hashable placement.

  Attributes:
    block: one of `BLOCK_NAMES`.
    resolutions: stage output resolutions (square maps) after which the block
      is inserted, sorted, without repeats.
    kwargs: extra constructor arguments as sorted `(name, value)` pairs; lists
      are turned into tuples.
  """
  block: str
  resolutions: Tuple[int, ...]
  kwargs: Tuple[Tuple[str, Any], ...] = ()


def _freeze(value: Any) -> Any:
  """Lists / tuples -> tuples (recursively) so placements are hashable."""
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  if hasattr(value, "items") and not isinstance(value, nn.Module):
    return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
  return value


def _as_dict(spec: Any, field: str) -> Dict[str, Any]:
  if isinstance(spec, BlockPlacement):
    return {"block": spec.block, "resolutions": spec.resolutions, **dict(spec.kwargs)}
  if hasattr(spec, "to_dict"):  # ml_collections.ConfigDict
    spec = spec.to_dict()
  if not isinstance(spec, Mapping):
    raise ValueError(f"`{field}` must be a dict with keys 'block' and 'resolutions', "
                     f"got {spec!r}.")
  return dict(spec)


def normalize_placements(specs: Optional[Iterable[Any]], field: str,
                         valid_resolutions: Optional[Sequence[int]] = None
                         ) -> Tuple[BlockPlacement, ...]:
  """Validates placement specs and returns them as `BlockPlacement`s.

  Args:
    specs: sequence of dicts (or ConfigDicts, or `BlockPlacement`s) with keys
      `'block'` (a name in `BLOCK_NAMES`), `'resolutions'` (an int or a list of
      ints) and any block constructor arguments; None or empty for no blocks.
    field: the config field the specs came from (e.g. `'g_blocks'`), used in
      error messages.
    valid_resolutions: stage output resolutions of the backbone; None skips
      that check.

  Returns:
    Tuple of `BlockPlacement`, in input order.

  Raises:
    ValueError: naming `field[i]...` if an entry is not a dict, has no or an
      unknown `'block'`, has no / empty / non-integer `'resolutions'`, or a
      resolution that is not a stage output of the backbone.
  """
  if specs is None:
    return ()
  if isinstance(specs, (Mapping, BlockPlacement)) or hasattr(specs, "to_dict"):
    raise ValueError(f"`{field}` must be a list of placements, got a single {specs!r}.")
  out = []
  for i, spec in enumerate(specs):
    where = f"{field}[{i}]"
    d = _as_dict(spec, where)
    if "block" not in d:
      raise ValueError(f"`{where}` has no 'block' key; expected one of {BLOCK_NAMES}.")
    name = d.pop("block")
    if name not in BLOCKS:
      raise ValueError(f"`{where}.block` must be one of {BLOCK_NAMES}, got {name!r}.")
    if "resolutions" not in d:
      raise ValueError(f"`{where}` has no 'resolutions' key (list of ints).")
    res = d.pop("resolutions")
    res = (res,) if isinstance(res, int) else tuple(res)
    if not res or not all(isinstance(r, int) and not isinstance(r, bool) for r in res):
      raise ValueError(f"`{where}.resolutions` must be a non-empty list of ints, got {res!r}.")
    if valid_resolutions is not None:
      bad = [r for r in res if r not in valid_resolutions]
      if bad:
        raise ValueError(
            f"`{where}.resolutions` has {bad}, which is not a stage output resolution "
            f"of this backbone; valid: {tuple(sorted(valid_resolutions))}.")
    out.append(BlockPlacement(name, tuple(sorted(set(res))), _freeze(d)))
  return tuple(out)


def block_class(name: str) -> Optional[type]:
  """Imports and returns the module class for block `name` (None for 'none').

  Raises:
    ValueError: if `name` is not in `BLOCK_NAMES`.
  """
  if name not in BLOCKS:
    raise ValueError(f"`block` must be one of {BLOCK_NAMES}, got {name!r}.")
  module, cls = BLOCKS[name]
  if not module:
    return None
  return getattr(importlib.import_module(module), cls)


def _field_names(cls: type) -> set:
  return {f.name for f in dataclasses.fields(cls)}


def make_block(placement: BlockPlacement, *, spectral_conv: bool = False,
               dtype: Optional[jnp.dtype] = None, param_dtype: jnp.dtype = jnp.float32,
               axis_name: Optional[str] = None, remat: bool = False,
               name: Optional[str] = None) -> Optional[nn.Module]:
  """Constructs the block of `placement` (call inside a parent's compact method).

  Args:
    placement: a `BlockPlacement` (from `normalize_placements`).
    spectral_conv: give blocks with a `conv` / `dense` field `SpectralConv` /
      `SpectralDense` (from `genattn_jax.layers.norms`), unless the
      placement's kwargs set them.
    dtype: computation dtype, forwarded when the block has a `dtype` field.
    param_dtype: parameter dtype, forwarded likewise.
    axis_name: the model's pmap axis, forwarded to blocks with an `axis_name`
      field (AN's global-batch sampling) unless the kwargs set it.
    remat: wrap the block class in `nn.remat` (see the module doc); the train flag
      of AN / ASPP (second positional argument of `call_block`) is static.
    name: submodule name.

  Returns:
    The module, or None for the 'none' block.

  Raises:
    ValueError: if a kwarg is not a field of the block class (naming the
      block), or the block name is unknown.
  """
  cls = block_class(placement.block)
  if cls is None:
    return None
  fields = _field_names(cls)
  kwargs = dict(placement.kwargs)
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"block {placement.block!r} ({cls.__name__}) got unknown arguments "
                     f"{unknown}; its fields are {sorted(fields - {'parent', 'name'})}.")
  if spectral_conv:
    from genattn_jax.layers import norms  # pylint: disable=g-import-not-at-top
    if "conv" in fields:
      kwargs.setdefault("conv", norms.SpectralConv)
    if "dense" in fields:
      kwargs.setdefault("dense", norms.SpectralDense)
  if "dtype" in fields:
    kwargs.setdefault("dtype", dtype)
  if "param_dtype" in fields:
    kwargs.setdefault("param_dtype", param_dtype)
  if "axis_name" in fields:
    kwargs.setdefault("axis_name", axis_name)
  if remat:  # AN / ASPP get their train flag as (self, x, flag): static
    cls = nn.remat(cls, static_argnums=(2,) if placement.block in ("an", "aspp") else ())
  return cls(name=name, **kwargs)


def call_block(block_name: str, module: Optional[nn.Module], x: jax.Array,
               train: bool) -> jax.Array:
  """Applies a block made by `make_block` with the right call signature."""
  if module is None:
    return x
  # Flags are passed positionally: `nn.remat` can only mark positional arguments static.
  if block_name == "an":
    return module(x, train)
  if block_name == "aspp" and getattr(module, "norm", None) is not None:
    return module(x, not train)
  return module(x)


def apply_placed_blocks(x: jax.Array, placements: Sequence[BlockPlacement],
                        resolution: int, *, train: bool, spectral_conv: bool,
                        dtype: Optional[jnp.dtype], param_dtype: jnp.dtype,
                        axis_name: Optional[str] = None, remat: bool = False) -> jax.Array:
  """Applies every placed block whose resolutions include `resolution`.

  Call from inside the backbone's `@nn.compact` method right after the stage
  whose output `x` is `resolution` x `resolution`; the blocks become children
  of that backbone named `f'{block}_{i}_r{resolution}'` (i = index of the
  placement in the config list), e.g. `'spap_0_r64'`, so the param tree shows
  where each block sits.

  Args:
    x: [B, resolution, resolution, C] stage output.
    placements: the backbone's normalised placements.
    resolution: spatial size of `x`.
    train: training mode (forwarded to AN / ASPP with batch norm).
    spectral_conv: see `make_block`.
    dtype: computation dtype.
    param_dtype: parameter dtype.
    axis_name: the model's pmap axis (see `make_block`).
    remat: rematerialise the blocks (see `make_block`).

  Returns:
    [B, resolution, resolution, C], the input after the blocks, in placement
    order.
  """
  for i, p in enumerate(placements):
    if resolution in p.resolutions:
      module = make_block(p, spectral_conv=spectral_conv, dtype=dtype,
                          param_dtype=param_dtype, axis_name=axis_name, remat=remat,
                          name=f"{p.block}_{i}_r{resolution}")
      x = call_block(p.block, module, x, train)
  return x


POSITIONS: Tuple[str, ...] = ("after_block", "in_block")


def split_by_position(placements: Sequence[BlockPlacement], field: str = "blocks"
                      ) -> Tuple[Tuple[BlockPlacement, ...], Tuple[BlockPlacement, ...]]:
  """Splits placements by their optional `position` kwarg, which is removed.

  `'after_block'` (default): after the stage (residual block) whose output has the listed
  resolution. `'in_block'`: inside that residual block, between its first conv and the
  activation that follows (the AN paper's "between the convolutional layer and the activation
  layer", Sec. 4 / Fig. 6); only backbones with residual blocks (ResNet) support it.

  Returns:
    (after-block placements, in-block placements).

  Raises:
    ValueError: an unknown `position` (naming `field`).
  """
  after, inside = [], []
  for i, p in enumerate(placements):
    kwargs = dict(p.kwargs)
    pos = kwargs.pop("position", "after_block")
    if pos not in POSITIONS:
      raise ValueError(f"`{field}[{i}]['position']` must be one of {POSITIONS}, got {pos!r}.")
    q = p._replace(kwargs=tuple(sorted(kwargs.items())))
    (inside if pos == "in_block" else after).append(q)
  return tuple(after), tuple(inside)


def placed_resolutions(placements: Sequence[BlockPlacement]) -> List[int]:
  """All resolutions used by `placements`, sorted."""
  return sorted({r for p in placements for r in p.resolutions})


def resolve_layer(layer: Optional[Callable[..., nn.Module]], spectral: bool,
                  plain: Callable[..., nn.Module], spectral_name: str) -> Callable[..., nn.Module]:
  """Returns `layer`, or (when None) `plain` / the `norms.<spectral_name>` class.

  Used by the backbones for their injectable `conv` / `dense` /
  `conv_transpose` fields, so `genattn_jax.layers.norms` is only imported when
  spectral norm is in use.
  """
  if layer is not None:
    return layer
  if not spectral:
    return plain
  norms = importlib.import_module("genattn_jax.layers.norms")
  return getattr(norms, spectral_name)


def batch_norm(x: jax.Array, y: Optional[jax.Array], *, num_classes: int, train: bool,
               axis_name: Optional[str], dtype: Optional[jnp.dtype],
               param_dtype: jnp.dtype, name: str, momentum: float = 0.9,
               epsilon: float = 1e-5) -> jax.Array:
  """Batch norm shared by the generators: class-conditional when num_classes > 0.

  Builds `norms.ConditionalBatchNorm` (per-class gain and bias, de Vries et
  al. 2017 / Miyato & Koyama 2018) when `num_classes > 0`, else
  `flax.linen.BatchNorm`; running statistics live in `'batch_stats'`, batch
  statistics are used when `train`, and `axis_name` averages them over a pmap
  axis. Call inside a compact method.
  """
  if num_classes > 0:
    from genattn_jax.layers.norms import ConditionalBatchNorm  # pylint: disable=g-import-not-at-top
    return ConditionalBatchNorm(num_classes=num_classes, momentum=momentum, epsilon=epsilon,
                                axis_name=axis_name, dtype=dtype, param_dtype=param_dtype,
                                name=name)(x, y, use_running_average=not train)
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon,
                      axis_name=axis_name, dtype=dtype, param_dtype=param_dtype,
                      name=name)(x)


def projection_logits(h: jax.Array, y: Optional[jax.Array], *, num_classes: int,
                      dense: Callable[..., nn.Module], dtype: Optional[jnp.dtype],
                      param_dtype: jnp.dtype) -> jax.Array:
  """Discriminator head: linear logit plus the class projection term.

  `logit = w^T h + b + [num_classes > 0] * <V^T onehot(y), h>` (Miyato & Koyama
  2018, Eq. 3). V is a bias-free `dense` layer applied to `onehot(y)`, which
  equals an embedding lookup; with `dense = SpectralDense` V is spectrally
  normalised as a [num_classes, C] matrix, like the official SNEmbedID. Call
  inside a compact method.

  Args:
    h: [B, C] pooled features.
    y: [B] int labels in [0, num_classes) or None when unconditional.

  Returns:
    [B] float32 logits.
  """
  out = dense(features=1, dtype=dtype, param_dtype=param_dtype, name="linear")(h)[:, 0]
  if num_classes > 0:
    onehot = jax.nn.one_hot(y, num_classes, dtype=h.dtype)
    emb = dense(features=h.shape[-1], use_bias=False, dtype=dtype, param_dtype=param_dtype,
                name="embed")(onehot)
    out = out + jnp.sum(emb * h, axis=-1)
  return wide(out)


def check_labels(y: Optional[jax.Array], num_classes: int, batch: int) -> None:
  """Raises ValueError unless `y` is [batch] int labels when num_classes > 0.

  Unconditional models (num_classes == 0) ignore `y`, so a trainer can pass a
  labelled dataset's labels to either kind of model.
  """
  if num_classes > 0:
    if y is None:
      raise ValueError(f"`y` ([B] int class labels) is required when num_classes="
                       f"{num_classes} > 0.")
    if jnp.ndim(y) != 1 or y.shape[0] != batch:
      raise ValueError(f"`y` must have shape [B] = [{batch}], got {tuple(jnp.shape(y))}.")
    if not jnp.issubdtype(y.dtype, jnp.integer):
      raise ValueError(f"`y` must be an integer array of labels, got dtype {y.dtype}.")
