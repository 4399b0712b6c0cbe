"""Every block of the issue is importable from `genattn_jax.layers` by name."""

import flax.linen as nn

import genattn_jax
from genattn_jax import layers

MODULES = [
    "ChannelSeparatedTransform", "LocalAttentionPyramid", "LAPBlock",
    "SpatialPyramidAttentivePooling", "AttentiveFuse", "AtrousConvBlock",
    "AttentiveNormalization", "SpatialAttentionModule", "ChannelAttentionModule",
    "DualAttention", "ClassSpecificLocalGeneration", "SemanticClassificationModule",
    "AttentionFusion", "SelfAttention", "MemoryEfficientSelfAttention", "CBAM", "ASPP",
    "SpectralConv", "SpectralDense", "SpectralConvTranspose", "ConditionalBatchNorm", "SPADE",
    "AdaIN", "PixelNorm", "InstanceNorm",
]
FUNCTIONS = ["patch_instance_norm", "lap_levels_for_resolution", "orthogonal_regularization",
             "orthogonal_penalty", "class_masked_l1", "regional_instance_norm"]


def test_every_block_is_exported():
  assert sorted(layers.__all__) == sorted(MODULES + FUNCTIONS)
  for name in MODULES:
    cls = getattr(layers, name)
    assert issubclass(cls, nn.Module), name
    fields = cls.__dataclass_fields__
    assert "dtype" in fields and "param_dtype" in fields, f"{name} lacks dtype/param_dtype"
    assert cls.__doc__ and len(cls.__doc__) > 200, f"{name} needs a real docstring"
  for name in FUNCTIONS:
    assert callable(getattr(layers, name)) and getattr(layers, name).__doc__, name


def test_version():
  assert genattn_jax.__version__
