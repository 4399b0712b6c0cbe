"""SAGAN self-attention (Zhang et al., "Self-Attention Generative Adversarial
Networks", ICML 2019, Sec. 3, Eqs. (1)-(3)), in the form of the authors' released
code (also used by BigGAN), plus a memory-efficient evaluation of the same layer.

Differences between the paper and the official code, followed here:
  * the key (phi) and value (g) maps are 2x2 max-pooled, so each of the H*W queries
    attends to H*W/4 positions;
  * the value map has C/2 channels (the paper's Eq. (2) keeps C/8 throughout) and a
    1x1 output conv maps it back to C (the paper's v / W_v);
  * the 1x1 convs have no bias.
Logits are not scaled by 1/sqrt(d) (SAGAN does not), and the softmax runs over keys.
"""

from typing import Any, Callable, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

Dtype = Any


def _attention_core(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """softmax_s(q_t . k_s) v_s for `q [B, T, Ck]`, `k [B, S, Ck]`, `v [B, S, Cv]`.

  Logits and softmax are computed in (at least) float32; the weighted sum in v's dtype.
  """
  logits = jnp.einsum("btc,bsc->bts", q, k,
                      preferred_element_type=jnp.promote_types(q.dtype, jnp.float32))
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bts,bsc->btc", probs, v)


class SelfAttention(nn.Module):
  """SAGAN self-attention block: `y = x + gamma * o(attention(x))`.

  With `x: [B, H, W, C]` and N = H * W:
    theta = conv1x1_{C/8}(x)                        -> queries  [B, N, C/8]
    phi   = maxpool2x2(conv1x1_{C/8}(x))            -> keys     [B, N/4, C/8]
    g     = maxpool2x2(conv1x1_{C/2}(x))            -> values   [B, N/4, C/2]
    beta  = softmax over keys of theta phi^T        -> [B, N, N/4]   (Eq. (1))
    o     = conv1x1_C(reshape(beta g, [B, H, W, C/2]))                (Eq. (2))
    y     = x + gamma * o,  gamma a learned scalar initialised to 0   (Eq. (3))
  so the block is the identity at initialisation. This class materialises the full
  `[B, N, N/4]` attention matrix (memory O(B H^2 W^2 / 4)); use
  `MemoryEfficientSelfAttention` (same parameters) for large maps.

  Parameters: `params['theta' | 'phi' | 'g' | 'o']` (the convs) and the scalar
  `params['gamma']` (SAGAN's gamma; sometimes written sigma).

  Attributes:
    conv: conv constructor called as `conv(features=, kernel_size=(1, 1),
      use_bias=, dtype=, param_dtype=, name=)`; `layers.conv.Conv` (flax's `nn.Conv` with
      the CPU kernel gradient) by default, pass
      `SpectralConv` for the spectrally normalised version used in SAGAN.
    use_bias: bias in the 1x1 convs (False, as in the official code).
    gamma_init: initializer of the residual scale (zeros).
    dtype: computation dtype (None: inferred from input and params). Logits and
      softmax are always computed in at least float32.
    param_dtype: parameter dtype.
  """
  conv: Callable[..., nn.Module] = Conv
  use_bias: bool = False
  gamma_init: Callable[..., jax.Array] = nn.initializers.zeros_init()
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  def _attend(self, q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Attention of `q [B, T, Ck]` over `k [B, S, Ck]`, `v [B, S, Cv]` -> `[B, T, Cv]`."""
    return _attention_core(q, k, v)

  def _check(self, x: jax.Array) -> Tuple[int, int, int, int]:
    b, h, w, c = _checks.check_nhwc(x, "x")
    _checks.check_divisible(c, 8, "x.shape[-1] (channels of x)", "SAGAN's channel reduction")
    _checks.check_divisible(h, 2, "x.shape[1] (height of x)", "the 2x2 max-pool")
    _checks.check_divisible(w, 2, "x.shape[2] (width of x)", "the 2x2 max-pool")
    return b, h, w, c

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the block.

    Args:
      x: `[B, H, W, C]` float, C divisible by 8, H and W even.

    Returns:
      `[B, H, W, C]`, in `dtype` when given (else the promoted input/param dtype).

    Raises:
      ValueError: if `x` is not rank 4, its channels are not divisible by 8, or its
        height / width are odd.
    """
    b, h, w, c = self._check(x)
    conv_kw = dict(kernel_size=(1, 1), use_bias=self.use_bias, dtype=self.dtype,
                   param_dtype=self.param_dtype)
    theta = self.conv(features=c // 8, name="theta", **conv_kw)(x)
    phi = self.conv(features=c // 8, name="phi", **conv_kw)(x)
    g = self.conv(features=c // 2, name="g", **conv_kw)(x)
    phi = nn.max_pool(phi, (2, 2), strides=(2, 2))
    g = nn.max_pool(g, (2, 2), strides=(2, 2))
    s = (h // 2) * (w // 2)
    attended = self._attend(theta.reshape(b, h * w, c // 8), phi.reshape(b, s, c // 8),
                            g.reshape(b, s, c // 2))
    o = self.conv(features=c, name="o", **conv_kw)(attended.reshape(b, h, w, c // 2))
    gamma = self.param("gamma", self.gamma_init, (), self.param_dtype)
    x, o, gamma = nn.dtypes.promote_dtype(x, o, gamma, dtype=self.dtype)
    return x + gamma * o


class MemoryEfficientSelfAttention(SelfAttention):
  """`SelfAttention` evaluated in query chunks; same parameters, same result.

  The parameter tree is identical to `SelfAttention`'s, so variables are
  interchangeable, and outputs agree to float32 round-off (~1e-6). Instead of the
  `[B, N, N/4]` attention matrix, the queries are split into chunks of `q` rows and
  processed sequentially with `jax.lax.map`; only one `[B, q, N/4]` block of logits
  (plus its softmax) exists at a time. Each chunk is wrapped in `jax.checkpoint`, so
  the backward pass recomputes the block instead of storing all of them.

  Why not `jax.nn.dot_product_attention` (layout `[B, T, heads, head_dim]`): it
  requires keys and values to share `head_dim`, while SAGAN uses C/8 for keys and C/2
  for values, and its XLA implementation (the only one on CPU) materialises the full
  `[B, heads, T, S]` logits anyway.

  Memory: with the default `max_chunk_logits = 2**24`, the chunk is
  `q = 2**24 // (B * N/4)` queries (at least 1), so a chunk's float32 logits take
  64 MiB. Example `[1, 1024, 1024, 32]` (N = 2**20, N/4 = 2**18): q = 64, logits
  64 MiB per chunk (the full matrix would be 2**38 * 4 B = 1 TiB); activations
  (x, theta, phi, g, attention output, o, y) total well under 1 GiB: XLA's memory
  analysis reports 0.16 GiB of temporaries for the forward pass and 0.8 GiB for the
  gradient (the full-matrix `SelfAttention` gradient: ~3 TiB), and the CPU process
  stays at ~0.7 GiB resident. Time is unchanged, O(B N^2 C): that example is about
  1e13 FLOPs, tens of minutes on a few CPU cores ([1, 512, 512, 32]: ~2 min on 2
  busy cores, 0.56 GiB peak RSS). On GPUs a larger `max_chunk_logits` is faster.

  Attributes:
    query_chunk_size: queries per chunk; None chooses it from `max_chunk_logits`.
    max_chunk_logits: budget of logits elements (B * q * N/4) per chunk when
      `query_chunk_size` is None.
    (plus all `SelfAttention` attributes).
  """
  query_chunk_size: Optional[int] = None
  max_chunk_logits: int = 2**24

  def _attend(self, q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    b, t, ck = q.shape
    s, cv = k.shape[1], v.shape[-1]
    if self.query_chunk_size is not None:
      _checks.check_positive(self.query_chunk_size, "query_chunk_size")
      chunk = self.query_chunk_size
    else:
      _checks.check_positive(self.max_chunk_logits, "max_chunk_logits")
      chunk = max(1, self.max_chunk_logits // (b * s))
    chunk = min(chunk, t)
    n_chunks = -(-t // chunk)
    pad = n_chunks * chunk - t
    q = jnp.pad(q, ((0, 0), (0, pad), (0, 0)))  # padded rows are computed and dropped
    q = q.reshape(b, n_chunks, chunk, ck).transpose(1, 0, 2, 3)
    block = jax.checkpoint(lambda qc: _attention_core(qc, k, v), prevent_cse=False)
    out = jax.lax.map(block, q)  # [n_chunks, B, chunk, Cv]
    out = out.transpose(1, 0, 2, 3).reshape(b, n_chunks * chunk, cv)
    return out[:, :t]
