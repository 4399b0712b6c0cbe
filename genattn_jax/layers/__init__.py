"""Blocks from the five papers, their baselines, and the normalization layers backbones need.

All are Flax linen modules (or pure functions) on NHWC arrays with separate `dtype` and
`param_dtype`:

  LAP (lap paper, Sec. 4):      ChannelSeparatedTransform, patch_instance_norm,
                                LocalAttentionPyramid, LAPBlock, lap_levels_for_resolution
  SPAP (spap paper, Sec. 3.2):  SpatialPyramidAttentivePooling, AttentiveFuse, AtrousConvBlock
  AN (an paper, Sec. 3):        AttentiveNormalization, regional_instance_norm,
                                orthogonal_regularization, orthogonal_penalty
  DAGAN (dagan paper, Sec. 3):  SpatialAttentionModule, ChannelAttentionModule, DualAttention
  LGGAN (lggan paper, 3.2):     ClassSpecificLocalGeneration, SemanticClassificationModule,
                                class_masked_l1, AttentionFusion
  Baselines:                    SelfAttention, MemoryEfficientSelfAttention (SAGAN), CBAM, ASPP
  Normalization:                SpectralConv, SpectralDense, SpectralConvTranspose,
                                ConditionalBatchNorm, SPADE, AdaIN, PixelNorm, InstanceNorm
"""

from genattn_jax.layers.aspp import ASPP
from genattn_jax.layers.attentive_norm import (AttentiveNormalization, orthogonal_penalty,
                                               orthogonal_regularization, regional_instance_norm)
from genattn_jax.layers.cbam import CBAM
from genattn_jax.layers.dagan import (ChannelAttentionModule, DualAttention,
                                      SpatialAttentionModule)
from genattn_jax.layers.lap import (ChannelSeparatedTransform, LAPBlock, LocalAttentionPyramid,
                                    lap_levels_for_resolution, patch_instance_norm)
from genattn_jax.layers.lggan import ClassSpecificLocalGeneration, class_masked_l1
from genattn_jax.layers.lggan_fusion import AttentionFusion, SemanticClassificationModule
from genattn_jax.layers.norms import (SPADE, AdaIN, ConditionalBatchNorm, InstanceNorm, PixelNorm,
                                      SpectralConv, SpectralConvTranspose, SpectralDense)
from genattn_jax.layers.self_attention import MemoryEfficientSelfAttention, SelfAttention
from genattn_jax.layers.spap import AtrousConvBlock, AttentiveFuse, SpatialPyramidAttentivePooling

__all__ = [
    "ASPP", "AdaIN", "AtrousConvBlock", "AttentionFusion", "AttentiveFuse",
    "AttentiveNormalization", "CBAM", "ChannelAttentionModule", "ChannelSeparatedTransform",
    "ClassSpecificLocalGeneration", "ConditionalBatchNorm", "DualAttention", "InstanceNorm",
    "LAPBlock", "LocalAttentionPyramid", "MemoryEfficientSelfAttention", "PixelNorm", "SPADE",
    "SelfAttention", "SemanticClassificationModule", "SpatialAttentionModule",
    "SpatialPyramidAttentivePooling", "SpectralConv", "SpectralConvTranspose", "SpectralDense",
    "class_masked_l1", "lap_levels_for_resolution", "orthogonal_penalty",
    "orthogonal_regularization", "patch_instance_norm", "regional_instance_norm",
]
