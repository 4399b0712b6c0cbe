"""Cityscapes label ids → colour label images, and the unpaired labels↔photo layout.

The colour table and the train-id mapping are the Cityscapes dataset's own (the `labels`
table of the official `cityscapesScripts`, ids 0..33; the licence-plate id -1 is never in a
labelIds image). The `cityscapesscripts` package itself is not a dependency: installing it
pulls matplotlib, pyquaternion, coloredlogs and the obsolete `typing` backport into the
environment for a 34-row table.

CycleGAN's Cityscapes task translates between the colour label image and the photo. Here A =
colour labels, B = photos, so A→B is the paper's "labels → photo" (Table 2) and B→A is
"photo → labels".
"""

import os
import pathlib
from typing import Dict, Optional

import numpy as np
from PIL import Image

# id: (name, train id (255 = ignored in evaluation), RGB colour)
LABELS = {
    0: ("unlabeled", 255, (0, 0, 0)),
    1: ("ego vehicle", 255, (0, 0, 0)),
    2: ("rectification border", 255, (0, 0, 0)),
    3: ("out of roi", 255, (0, 0, 0)),
    4: ("static", 255, (0, 0, 0)),
    5: ("dynamic", 255, (111, 74, 0)),
    6: ("ground", 255, (81, 0, 81)),
    7: ("road", 0, (128, 64, 128)),
    8: ("sidewalk", 1, (244, 35, 232)),
    9: ("parking", 255, (250, 170, 160)),
    10: ("rail track", 255, (230, 150, 140)),
    11: ("building", 2, (70, 70, 70)),
    12: ("wall", 3, (102, 102, 156)),
    13: ("fence", 4, (190, 153, 153)),
    14: ("guard rail", 255, (180, 165, 180)),
    15: ("bridge", 255, (150, 100, 100)),
    16: ("tunnel", 255, (150, 120, 90)),
    17: ("pole", 5, (153, 153, 153)),
    18: ("polegroup", 255, (153, 153, 153)),
    19: ("traffic light", 6, (250, 170, 30)),
    20: ("traffic sign", 7, (220, 220, 0)),
    21: ("vegetation", 8, (107, 142, 35)),
    22: ("terrain", 9, (152, 251, 152)),
    23: ("sky", 10, (70, 130, 180)),
    24: ("person", 11, (220, 20, 60)),
    25: ("rider", 12, (255, 0, 0)),
    26: ("car", 13, (0, 0, 142)),
    27: ("truck", 14, (0, 0, 70)),
    28: ("bus", 15, (0, 60, 100)),
    29: ("caravan", 255, (0, 0, 90)),
    30: ("trailer", 255, (0, 0, 110)),
    31: ("train", 16, (0, 80, 100)),
    32: ("motorcycle", 17, (0, 0, 230)),
    33: ("bicycle", 18, (119, 11, 32)),
}
NUM_TRAIN_CLASSES = 19
COLORS = np.array([LABELS[i][2] for i in range(34)], np.uint8)   # [34, 3]
TRAIN_IDS = np.array([LABELS[i][1] for i in range(34)], np.uint8)  # [34]


def _check_ids(ids: np.ndarray, name: str) -> np.ndarray:
  ids = np.asarray(ids)
  if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"`{name}` must be an integer [H, W] label-id map, got {ids.dtype} "
                     f"{ids.shape}.")
  if ids.size and (ids.min() < 0 or ids.max() > 33):
    raise ValueError(f"`{name}` holds ids outside the Cityscapes range 0..33 "
                     f"(min {ids.min()}, max {ids.max()}).")
  return ids


def colorize(label_ids: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] colour label image of an int [H, W] labelIds map (values 0..33).

  Raises:
    ValueError: not a 2-D integer map, or an id outside 0..33.
  """
  return COLORS[_check_ids(label_ids, "label_ids")]


def to_train_ids(label_ids: np.ndarray) -> np.ndarray:
  """uint8 [H, W] evaluation train ids (0..18, 255 = ignored) of a labelIds map."""
  return TRAIN_IDS[_check_ids(label_ids, "label_ids")]


def _resize(img: Image.Image, size: int, nearest: bool) -> Image.Image:
  return img.resize((size, size), Image.NEAREST if nearest else Image.BICUBIC)


def build_unpaired(pairs_root: str, out_root: str, image_size: int = 256,
                   test_fraction: float = 0.0) -> Dict[str, int]:
  """Writes the CycleGAN layout for labels ↔ photo from a SPADE-style Cityscapes folder.

  Reads `pairs_root/train_label/*_gtFine_labelIds.png` and the matching
  `train_img/*_leftImg8bit.png`, resizes both to `image_size` x `image_size` (the aspect is
  squashed as in CycleGAN's 256x256 Cityscapes; nearest for label ids, bicubic for photos),
  and writes `trainA/` (colour labels), `trainB/` (photos), `testA/`, `testB/` (the last
  `test_fraction` of the sorted pairs, paired by file name, or with 0 the training pairs
  again, which is what a handful of pairs allows) and `testA_ids/` (train-id maps of the
  test labels, uint8 PNG, for the FCN score).

  Returns:
    {'train': n_train, 'test': n_test}.

  Raises:
    FileNotFoundError: no label maps with photos under `pairs_root`.
  """
  root = pathlib.Path(pairs_root)
  labels = sorted((root / "train_label").glob("*_gtFine_labelIds.png"))
  pairs = []
  for lab in labels:
    stem = lab.name[: -len("_gtFine_labelIds.png")]
    photo = root / "train_img" / f"{stem}_leftImg8bit.png"
    if photo.exists():
      pairs.append((stem, lab, photo))
  if not pairs:
    raise FileNotFoundError(f"no `train_label/*_gtFine_labelIds.png` with a matching "
                            f"`train_img/*_leftImg8bit.png` under {root}.")
  n_test = int(round(len(pairs) * test_fraction))
  train = pairs[: len(pairs) - n_test] if n_test else pairs
  test = pairs[len(pairs) - n_test:] if n_test else pairs
  out = pathlib.Path(out_root)
  for sub in ("trainA", "trainB", "testA", "testB", "testA_ids"):
    (out / sub).mkdir(parents=True, exist_ok=True)
  for split, items in (("train", train), ("test", test)):
    for stem, lab, photo in items:
      ids = np.asarray(_resize(Image.open(lab), image_size, nearest=True))
      Image.fromarray(colorize(ids)).save(out / f"{split}A" / f"{stem}.png")
      rgb = _resize(Image.open(photo).convert("RGB"), image_size, nearest=False)
      rgb.save(out / f"{split}B" / f"{stem}.png")
      if split == "test":
        Image.fromarray(to_train_ids(ids)).save(out / "testA_ids" / f"{stem}.png")
  return {"train": len(train), "test": len(test)}


def main(argv: Optional[list] = None) -> None:
  """CLI: python -m genattn_jax.data.cityscapes PAIRS_ROOT OUT_ROOT [IMAGE_SIZE]."""
  import sys  # pylint: disable=g-import-not-at-top
  args = sys.argv[1:] if argv is None else argv
  if len(args) not in (2, 3):
    raise SystemExit("usage: python -m genattn_jax.data.cityscapes PAIRS_ROOT OUT_ROOT "
                     "[IMAGE_SIZE]")
  counts = build_unpaired(args[0], args[1], int(args[2]) if len(args) == 3 else 256)
  print(f"wrote {counts} to {os.path.abspath(args[1])}")


if __name__ == "__main__":
  main()
