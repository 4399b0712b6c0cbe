"""The label-map settings of `config.data` for paired (label map → photo) data.

Kept outside `genattn_jax.data` (whose package and `paired.py` need grain and
tensorflow-datasets; `paired` re-exports both names) so that the
'semantic' train step can read them where that data stack is not installed, e.g.
benchmarks/gpu_suite.sh on a GPU machine.
"""

from typing import Tuple

LAYOUTS = ("cityscapes", "coco_stuff", "ade20k", "folder")


def data_settings(data_config) -> Tuple[str, int, bool, bool]:
  """(layout, label_nc, contain_dontcare_label, use_instance) of `config.data`.

  Raises:
    ValueError: unknown layout or label_nc ≤ 0.
  """
  layout = data_config.get("layout", "folder")
  if layout not in LAYOUTS:
    raise ValueError(f"`config.data.layout` must be one of {LAYOUTS}, got {layout!r}.")
  nc = int(data_config.label_nc)
  if nc <= 0:
    raise ValueError(f"`config.data.label_nc` must be > 0, got {nc}.")
  return (layout, nc, bool(data_config.contain_dontcare_label),
          bool(data_config.use_instance))
