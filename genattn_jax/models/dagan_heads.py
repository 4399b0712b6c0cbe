"""DAGAN's generator head: SAM + CAM on the backbone's last map, then the image.

Source: H. Tang, S. Bai and N. Sebe, "Dual Attention GANs for Semantic Image
Synthesis" (ACM MM 2020), Sec. 3 ("Attention Modeling with GANs", Fig. 2) and
the Table 4 ablation (B1-B6). The official code
(github.com/Ha0Tang/DAGAN, `DAGAN_v1/models/networks/generator.py`) puts the
head after SPADE's last residual block: the CAM's earlier map is the input of
that block (2C channels at the output size, after the last upsampling),
`x = CAM([earlier, last]) + SAM(last)`, then `conv_img(leaky_relu(x, 0.2))`
(3x3, to 3 channels) and tanh; this module is that head for any host
generator.
"""

from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers import dagan
from genattn_jax.layers.conv import Conv

Array = jax.Array
Dtype = jnp.dtype

# Table 4 rows: (use_sam, cam_variant).
TABLE4_ROWS: Dict[str, Tuple[bool, Optional[str]]] = {
    "B1": (False, None),   # the paper's baseline (no attention; SPADE here)
    "B2": (True, None),    # B1 + SAM
    "B3": (False, "I"),    # B1 + CAM-I (Eq. 8)
    "B4": (False, "II"),   # B1 + CAM-II (Eq. 9)
    "B5": (True, "I"),     # B2 + CAM-I
    "B6": (True, "II"),    # B2 + CAM-II: DAGAN
}


class DAGANHead(nn.Module):
  """Attention and output layer of the DAGAN generator (Sec. 3, Fig. 2).

  `x = SAM(last) + CAM([earlier..., last])` (Eq. 2-9; with `use_sam=False`
  only the CAM term, with `cam_variant=None` only the SAM term, with neither
  `x = last`: the baseline B1, plain SPADE), then
  `image = tanh(Conv3x3(LeakyReLU_0.2(x)))`. `from_table4(row)` builds the
  head of a Table 4 row.

  Submodules: 'sam' (`SpatialAttentionModule`), 'cam'
  (`ChannelAttentionModule`), 'conv_img' (the output conv, zero 'SAME'
  padding = PyTorch padding=1).

  Attributes:
    use_sam: apply SAM (rows B2, B5, B6).
    cam_variant: None (no CAM), 'I' (Eq. 8) or 'II' (Eq. 9).
    out_features: image channels (3 for RGB).
    negative_slope: LeakyReLU slope before the output conv (0.2 in the code).
    out_kernel_size: kernel size of the output conv (3x3).
    sam_kernel_size: SAM conv kernel (3x3 in the code).
    cam_kernel_size: kernel of CAM's conv on the earlier map(s) (3x3).
    init_scheme: 'spade' (xavier-normal gain `init_gain`, zero bias, as the official
      SPADE-based code; default) or 'default' (constructor initialisers).
    init_gain: xavier gain for init_scheme='spade' (0.02 in the code).
    conv: conv constructor for all convs of the head.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  use_sam: bool = True
  cam_variant: Optional[str] = "II"
  out_features: int = 3
  negative_slope: float = 0.2
  out_kernel_size: Tuple[int, int] = (3, 3)
  sam_kernel_size: Tuple[int, int] = (3, 3)
  cam_kernel_size: Tuple[int, int] = (3, 3)
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @classmethod
  def from_table4(cls, row: str, **kwargs) -> "DAGANHead":
    """The head of one Table 4 row ('B1' ... 'B6'); `kwargs` set the other fields.

    Raises:
      ValueError: if `row` is not a Table 4 row.
    """
    _checks.check_in(row, tuple(TABLE4_ROWS), "row")
    use_sam, cam_variant = TABLE4_ROWS[row]
    return cls(use_sam=use_sam, cam_variant=cam_variant, **kwargs)

  @nn.compact
  def __call__(self, last: Array, earlier: Union[Array, Sequence[Array], None] = None) -> Array:
    """Maps the backbone's last feature map to the image.

    Args:
      last: [B, H, W, C] float, the host generator's last feature map F_b^l.
      earlier: one [B, h, w, c] map or a list of them (earlier layers first),
        used by CAM only; required iff `cam_variant` is not None.

    Returns:
      [B, H, W, out_features] image in (-1, 1).

    Raises:
      ValueError: if `last` is not [B, H, W, C], if `earlier` is missing
        while CAM is on, or as `ChannelAttentionModule` /
        `SpatialAttentionModule`.
    """
    _checks.check_nhwc(last, "last")
    if self.cam_variant is not None:
      _checks.check_in(self.cam_variant, dagan.CAM_VARIANTS, "cam_variant")
    _checks.check_positive(self.out_features, "out_features")
    if self.dtype is not None:
      last = jnp.asarray(last, self.dtype)
    common = dict(init_scheme=self.init_scheme, init_gain=self.init_gain, conv=self.conv, dtype=self.dtype,
                  param_dtype=self.param_dtype)
    terms = []
    if self.use_sam:
      terms.append(dagan.SpatialAttentionModule(
          kernel_size=self.sam_kernel_size, name="sam", **common)(last))
    if self.cam_variant is not None:
      if earlier is None:
        raise ValueError(
            f"`earlier` (the earlier backbone map(s) for CAM) is required with "
            f"cam_variant={self.cam_variant!r}.")
      earlier = list(earlier) if isinstance(earlier, (list, tuple)) else [earlier]
      terms.append(dagan.ChannelAttentionModule(
          variant=self.cam_variant, branch_kernel_size=self.cam_kernel_size, name="cam",
          **common)(earlier + [last]))
    x = last if not terms else sum(terms[1:], terms[0])
    x = nn.leaky_relu(x, self.negative_slope)
    x = self.conv(features=self.out_features,
                  kernel_size=_checks.to_pair(self.out_kernel_size, "out_kernel_size"),
                  padding="SAME", dtype=self.dtype, param_dtype=self.param_dtype,
                  name="conv_img", **dagan.init_kwargs(self.init_scheme, self.init_gain))(x)
    return jnp.tanh(x)
