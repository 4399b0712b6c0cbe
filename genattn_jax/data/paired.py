"""Paired label map → photo data (semantic image synthesis) as tfds ArrayRecord + grain.

Layouts (`config.data.layout`), as the SPADE code (Park et al. 2019) reads them:
  * 'cityscapes': SPADE's flattened copy `{split}_img/*_leftImg8bit.png`,
    `{split}_label/*_gtFine_labelIds.png`, `{split}_inst/*_gtFine_instanceIds.png`, or the
    official tree `leftImg8bit/{split}/<city>/...`, `gtFine/{split}/<city>/...`. 35 label ids
    (0..33 appear in labelIds files; SPADE's `label_nc` is 35), no don't-care class, 16-bit
    instance ids.
  * 'coco_stuff': `{split}_img/*.jpg`, `{split}_label/*.png`, `{split}_inst/*.png` (SPADE's
    layout); 182 classes, 255 = unlabeled → the don't-care class `label_nc`.
  * 'ade20k': `ADEChallengeData2016/images/{training,validation}/*.jpg` and
    `annotations/...png` (split 'train' / 'val'); 150 classes stored as 1..150 with 0 = don't
    care, shifted by −1 so that don't care becomes `label_nc` (SPADE's ADE20K dataset). No
    instance maps.
  * 'folder': a generic folder with the COCO-Stuff layout (any image extension), `label_nc`,
    `contain_dontcare_label` (255 → `label_nc`) and `use_instance` from the config.

Each example is converted once (photo PIL bicubic, label and instance map PIL nearest, as
SPADE's transforms) to `config.data.load_size` = [H, W] and stored as uint8/int32 tensors in a
tfds ArrayRecord dataset under `data_dir`; bad input is refused at that point with
`PairedDataError` naming the file (a label id ≥ the number of classes, a photo or label without
its partner, different photo / label / instance sizes, an empty folder). The grain pipeline then
applies ONE random crop to `config.data.crop_size` and ONE horizontal flip (p = 0.5) to the
photo, the label map and the instance map together, and computes the instance-edge map of the
cropped instance map (SPADE's `get_edges`: a pixel is an edge when its instance id differs
from a 4-neighbour's).

Batch layout (per process, b = global batch / process count):
  'image': [b, H, W, 3] float32 in [-1, 1];
  'label': [b, H, W] int32 in [0, label_nc + contain_dontcare_label);
  'edge':  [b, H, W] float32 in {0, 1} (zeros when `use_instance` is False).
The order is a deterministic function of the seed and the iterator's position can be saved
and restored (grain), which the trainer checkpoints.

Label definitions: the Cityscapes ids are the `labelIds` of the official `cityscapesscripts`
package; that package is not a dependency because it requires matplotlib, pyquaternion,
coloredlogs, requests and the obsolete `typing` backport (cityscapesScripts 2.2.4 metadata).
Nothing here needs its tables: `label_nc` = 35 and the colours of `colorize_labels` are
computed.
"""

import dataclasses
import hashlib
import os
import pathlib
from typing import Dict, List, Optional, Sequence, Tuple

import grain
import jax
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from genattn_jax._paired_settings import LAYOUTS, data_settings  # re-exported
from genattn_jax.data import conversion_lock

# (label_nc, contain_dontcare_label, use_instance) as SPADE's per-dataset options.
DATASET_DEFAULTS = {"cityscapes": (35, False, True), "coco_stuff": (182, True, True),
                    "ade20k": (150, True, False)}
_IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class PairedDataError(ValueError):
  """Bad paired input: names the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class PairedFiles:
  """One example's files (`image` is None for label maps without photos)."""
  key: str
  label: str
  image: Optional[str] = None
  instance: Optional[str] = None


# ------------------------------------------------------------------------------ discovery


def _files(directory: pathlib.Path, suffixes: Sequence[str], recursive: bool = False
           ) -> Dict[str, pathlib.Path]:
  """{key: path} of the files in `directory` ending with one of `suffixes` (key = name less
  the suffix)."""
  out = {}
  for path in sorted(directory.rglob("*") if recursive else directory.iterdir()):
    if not path.is_file():
      continue
    for suf in suffixes:
      if path.name.lower().endswith(suf.lower()):
        out[path.name[:-len(suf)]] = path
        break
  return out


def _require_dir(path: pathlib.Path, what: str) -> pathlib.Path:
  if not path.is_dir():
    raise FileNotFoundError(f"{what} folder `{path}` does not exist.")
  return path


def _layout_dirs(root: pathlib.Path, layout: str, split: str):
  """(image dir, label dir, instance dir, (img suffixes, label suffix, inst suffix), recursive)."""
  if layout == "cityscapes":
    sfx = (("_leftImg8bit.png",), ("_gtFine_labelIds.png",), ("_gtFine_instanceIds.png",))
    if (root / f"{split}_label").is_dir():
      return (root / f"{split}_img", root / f"{split}_label", root / f"{split}_inst", sfx, False)
    return (root / "leftImg8bit" / split, root / "gtFine" / split, root / "gtFine" / split,
            sfx, True)
  if layout == "ade20k":
    if (root / "ADEChallengeData2016").is_dir():
      root = root / "ADEChallengeData2016"
    sub = {"train": "training", "val": "validation"}.get(split, split)
    return (root / "images" / sub, root / "annotations" / sub, None,
            ((".jpg", ".png"), (".png",), (".png",)), False)
  sfx = (_IMG_EXT, (".png",), (".png",))
  return (root / f"{split}_img", root / f"{split}_label", root / f"{split}_inst", sfx, False)


def find_pairs(root: str, layout: str, split: str, *, use_instance: bool,
               require_image: bool = True) -> List[PairedFiles]:
  """The examples of `split` under `root` in `layout`, sorted by key.

  Args:
    root: dataset folder.
    layout: one of `LAYOUTS`.
    split: 'train', 'val', 'test' (folder prefix; ADE20K maps train/val to training/validation).
    use_instance: require an instance map beside every label map.
    require_image: require a photo beside every label map (False: label maps to synthesise
      from, e.g. Cityscapes `test_label`).

  Raises:
    ValueError: unknown layout.
    FileNotFoundError: a required folder is missing.
    PairedDataError: no label maps, or a label map / photo / instance map without its partner.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"`config.data.layout` must be one of {LAYOUTS}, got {layout!r}.")
  root_p = pathlib.Path(root).expanduser()
  _require_dir(root_p, "dataset")
  img_dir, lab_dir, inst_dir, (img_sfx, lab_sfx, inst_sfx), rec = _layout_dirs(
      root_p, layout, split)
  labels = _files(_require_dir(lab_dir, f"{layout} {split} label"), lab_sfx, rec)
  if not labels:
    raise PairedDataError(f"no label maps ({'/'.join(lab_sfx)}) in `{lab_dir}`.")
  images: Dict[str, pathlib.Path] = {}
  if require_image:
    images = _files(_require_dir(img_dir, f"{layout} {split} photo"), img_sfx, rec)
    extra = sorted(set(images) - set(labels))
    if extra:
      raise PairedDataError(f"photo `{images[extra[0]]}` has no label map: expected "
                            f"`{lab_dir / (extra[0] + lab_sfx[0])}`.")
  insts: Dict[str, pathlib.Path] = {}
  if use_instance:
    if inst_dir is None:
      raise PairedDataError(f"layout {layout!r} has no instance maps: set "
                            "`config.data.use_instance = False`.")
    insts = _files(_require_dir(inst_dir, f"{layout} {split} instance"), inst_sfx, rec)
  out = []
  for key, lab in labels.items():
    if require_image and key not in images:
      raise PairedDataError(f"label map `{lab}` has no photo: expected "
                            f"`{img_dir / (key + img_sfx[0])}`.")
    if use_instance and key not in insts:
      raise PairedDataError(f"label map `{lab}` has no instance map: expected "
                            f"`{inst_dir / (key + inst_sfx[0])}` (or set "
                            "`config.data.use_instance = False`).")
    out.append(PairedFiles(key=key, label=str(lab),
                           image=str(images[key]) if require_image else None,
                           instance=str(insts[key]) if use_instance else None))
  return out


# ------------------------------------------------------------------------------ decoding


def read_label_ids(path: str, layout: str, label_nc: int, contain_dontcare_label: bool
                   ) -> np.ndarray:
  """A label map as int32 [H, W] in [0, label_nc + contain_dontcare_label), don't care mapped.

  ADE20K: ids − 1, with −1 (0 = don't care) → `label_nc`; other layouts with a don't-care
  class: 255 → `label_nc` (SPADE's convention).

  Raises:
    PairedDataError: the file is not a single-channel map, or holds an id ≥ the number of
      classes (SPADE's code fails there with a device-side assert).
  """
  with Image.open(path) as im:
    lab = np.asarray(im)
  if lab.ndim != 2:
    raise PairedDataError(f"label map `{path}` has shape {lab.shape}; expected a single-"
                          "channel image of class ids [H, W].")
  lab = lab.astype(np.int32)
  if layout == "ade20k":
    lab = lab - 1
    if contain_dontcare_label:
      lab[lab == -1] = label_nc
  elif contain_dontcare_label:
    lab[lab == 255] = label_nc
  n = label_nc + int(contain_dontcare_label)
  bad = (lab < 0) | (lab >= n)
  if bad.any():
    raw = int(np.asarray(Image.open(path))[bad][0])
    raise PairedDataError(
        f"label map `{path}` holds id {raw}, outside the {n} classes (`label_nc`={label_nc}, "
        f"`contain_dontcare_label`={contain_dontcare_label}, layout {layout!r}): raise "
        "`config.data.label_nc` or fix the file.")
  return lab


def _resize(arr: np.ndarray, size: Tuple[int, int], method) -> np.ndarray:
  h, w = size
  if arr.shape[:2] == (h, w):
    return arr
  if arr.ndim == 2 and arr.dtype == np.int32:
    return np.asarray(Image.fromarray(arr, "I").resize((w, h), method)).astype(np.int32)
  return np.asarray(Image.fromarray(arr).resize((w, h), method))


def load_example(files: PairedFiles, *, layout: str, label_nc: int,
                 contain_dontcare_label: bool, load_size: Optional[Sequence[int]]
                 ) -> Dict[str, np.ndarray]:
  """Reads, checks and resizes one example.

  Returns:
    {'label': int32 [H, W], 'instance': int32 [H, W] (zeros without an instance file),
     'image': uint8 [H, W, 3] (zeros without a photo)} at `load_size` = (H, W) (or the
    label map's size when None).

  Raises:
    PairedDataError: as `read_label_ids`, or photo / instance map sizes differ from the
      label map's (naming both files).
  """
  lab = read_label_ids(files.label, layout, label_nc, contain_dontcare_label)
  size = tuple(int(s) for s in load_size) if load_size else lab.shape
  out = {"label": _resize(lab, size, Image.NEAREST)}
  if files.instance:
    with Image.open(files.instance) as im:
      inst = np.asarray(im).astype(np.int32)
    if inst.shape != lab.shape:
      raise PairedDataError(f"instance map `{files.instance}` is {inst.shape[1]}x"
                            f"{inst.shape[0]} but label map `{files.label}` is "
                            f"{lab.shape[1]}x{lab.shape[0]}.")
    out["instance"] = _resize(inst, size, Image.NEAREST)
  else:
    out["instance"] = np.zeros(size, np.int32)
  if files.image:
    with Image.open(files.image) as im:
      img = np.asarray(im.convert("RGB"))
    if img.shape[:2] != lab.shape:
      raise PairedDataError(f"photo `{files.image}` is {img.shape[1]}x{img.shape[0]} but "
                            f"label map `{files.label}` is {lab.shape[1]}x{lab.shape[0]}.")
    out["image"] = _resize(img, size, Image.BICUBIC)
  else:
    out["image"] = np.zeros(size + (3,), np.uint8)
  return out


def instance_edges(inst: np.ndarray) -> np.ndarray:
  """SPADE's `get_edges`: 1 where a pixel's instance id differs from a 4-neighbour's.

  Args:
    inst: int [..., H, W] instance ids.

  Returns:
    float32 [..., H, W] in {0, 1}.
  """
  inst = np.asarray(inst)
  e = np.zeros(inst.shape, bool)
  dw = inst[..., :, 1:] != inst[..., :, :-1]
  dh = inst[..., 1:, :] != inst[..., :-1, :]
  e[..., :, 1:] |= dw
  e[..., :, :-1] |= dw
  e[..., 1:, :] |= dh
  e[..., :-1, :] |= dh
  return e.astype(np.float32)


def colorize_labels(label: np.ndarray, num_classes: int) -> np.ndarray:
  """uint8 [..., 3] colours of int label ids [...] (pix2pixHD/SPADE's bit-interleaved colour
  map: bit k of the id sets bit 7 − k//3 of red/green/blue in turn; id 0 is black)."""
  ids = np.arange(num_classes)
  cmap = np.zeros((num_classes, 3), np.int64)
  cid = ids.copy()
  for shift in range(7, -1, -1):
    for ch in range(3):
      cmap[:, ch] |= ((cid >> ch) & 1) << shift
    cid >>= 3
  return cmap.astype(np.uint8)[np.clip(np.asarray(label), 0, num_classes - 1)]


# ------------------------------------------------------------------------------ tfds


@dataclasses.dataclass
class PairedConfig(tfds.core.BuilderConfig):
  """Which paired dataset to convert (see module doc)."""
  source: str = ""
  layout: str = "folder"
  load_size: Tuple[int, int] = (256, 256)
  label_nc: int = 0
  contain_dontcare_label: bool = False
  use_instance: bool = True
  splits: Tuple[str, ...] = ("train",)


class PairedImages(tfds.core.GeneratorBasedBuilder):
  """tfds builder of one paired dataset (uint8 photo, int32 label / instance tensors)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Label, instance and photo tensors at load_size."}

  def _info(self) -> tfds.core.DatasetInfo:
    h, w = self.builder_config.load_size
    return tfds.core.DatasetInfo(
        builder=self, description=self.builder_config.description,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(h, w, 3), dtype=np.uint8, encoding="zlib"),
            "label": tfds.features.Tensor(shape=(h, w), dtype=np.int32, encoding="zlib"),
            "instance": tfds.features.Tensor(shape=(h, w), dtype=np.int32, encoding="zlib"),
            "key": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {s: self._generate_examples(s) for s in self.builder_config.splits}

  def _generate_examples(self, split):
    c = self.builder_config
    for files in find_pairs(c.source, c.layout, split, use_instance=c.use_instance):
      ex = load_example(files, layout=c.layout, label_nc=c.label_nc,
                        contain_dontcare_label=c.contain_dontcare_label,
                        load_size=c.load_size)
      yield files.key, dict(ex, key=files.key)


def _fingerprint(root: pathlib.Path, parts) -> str:
  h = hashlib.sha1(repr(parts).encode())
  for path in sorted(root.rglob("*")):
    if path.is_file():
      st = path.stat()
      h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
  return h.hexdigest()[:12]


def prepare_paired(data_config, splits: Sequence[str]) -> tfds.core.DatasetBuilder:
  """Converts `config.data.source` once (per content and settings) and returns the builder."""
  layout, nc, dc, inst = data_settings(data_config)
  root = pathlib.Path(data_config.source).expanduser().resolve()
  _require_dir(root, "dataset (`config.data.source`)")
  load = tuple(int(s) for s in data_config.load_size)
  parts = (layout, load, nc, dc, inst, tuple(splits))
  name = f"{root.name.lower()}_{load[0]}x{load[1]}_{_fingerprint(root, parts)}"
  name = "".join(ch if ch.isalnum() else "_" for ch in name)
  config = PairedConfig(name=name, source=str(root), layout=layout, load_size=load,
                        label_nc=nc, contain_dontcare_label=dc, use_instance=inst,
                        splits=tuple(splits), description=f"paired data from {root}")
  data_dir = os.path.expanduser(data_config.data_dir)
  builder, _ = conversion_lock.prepare_once(
      data_dir, lambda: PairedImages(config=config, data_dir=data_dir, file_format="array_record"),
      lambda b: b.download_and_prepare())
  return builder


# ------------------------------------------------------------------------------ grain


@dataclasses.dataclass(frozen=True)
class _CropFlip(grain.transforms.RandomMap):
  """One random crop (to `crop` = (h, w)) and one flip for photo, label and instance map."""
  crop: Tuple[int, int]
  flip: bool

  def random_map(self, ex, rng: np.random.Generator):
    h, w = ex["label"].shape
    ch, cw = self.crop
    if ch > h or cw > w:
      raise ValueError(f"`config.data.crop_size` {self.crop} exceeds `load_size` {(h, w)}.")
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    flip = self.flip and rng.random() < 0.5
    out = {}
    for k in ("image", "label", "instance"):
      v = ex[k][top:top + ch, left:left + cw]
      out[k] = v[:, ::-1] if flip else v
    return out


@dataclasses.dataclass(frozen=True)
class _ToArrays(grain.transforms.Map):
  use_instance: bool

  def map(self, ex):
    edge = (instance_edges(ex["instance"]) if self.use_instance
            else np.zeros(ex["label"].shape, np.float32))
    return {"image": np.asarray(ex["image"], np.float32) / 127.5 - 1.0,
            "label": np.ascontiguousarray(ex["label"], dtype=np.int32), "edge": edge}


def create_paired_loader(data_config, *, global_batch_size: int, seed: int,
                         split: Optional[str] = None, shuffle: bool = True,
                         num_epochs: Optional[int] = None, augment: bool = True,
                         drop_remainder: bool = True) -> grain.DataLoader:
  """The per-process grain loader of paired batches (see module doc for the layout).

  Args:
    data_config: `config.data` (source, layout, data_dir, split, load_size, crop_size,
      random_flip, label_nc, contain_dontcare_label, use_instance).
    global_batch_size: batch over all processes.
    seed: order and augmentation seed.
    split: overrides `data_config.split`.
    shuffle, num_epochs: as grain's IndexSampler (None = repeat forever).
    augment: random crop + flip (False: centre crop, no flip, for evaluation).

  Raises:
    ValueError: bad settings; PairedDataError / FileNotFoundError: bad files (see
      `find_pairs`, `load_example`).
  """
  n_proc = jax.process_count()
  if global_batch_size % n_proc:
    raise ValueError(f"`global_batch_size` ({global_batch_size}) must be divisible by the "
                     f"process count ({n_proc}).")
  split = split or data_config.split
  builder = prepare_paired(data_config, [split])
  source = builder.as_data_source(split=split)
  sampler = grain.samplers.IndexSampler(
      num_records=len(source), shuffle=shuffle, num_epochs=num_epochs, seed=seed,
      shard_options=grain.sharding.ShardOptions(shard_index=jax.process_index(),
                                                shard_count=n_proc, drop_remainder=True))
  crop = tuple(int(s) for s in data_config.get("crop_size", data_config.load_size))
  ops = [_CropFlip(crop, bool(data_config.get("random_flip", True)) and augment)
         if augment else _CenterCrop(crop),
         _ToArrays(bool(data_config.use_instance)),
         grain.transforms.Batch(global_batch_size // n_proc, drop_remainder=drop_remainder)]
  return grain.DataLoader(data_source=source, sampler=sampler, operations=ops,
                          worker_count=0)


@dataclasses.dataclass(frozen=True)
class _CenterCrop(grain.transforms.Map):
  crop: Tuple[int, int]

  def map(self, ex):
    h, w = ex["label"].shape
    ch, cw = self.crop
    top, left = (h - ch) // 2, (w - cw) // 2
    return {k: ex[k][top:top + ch, left:left + cw] for k in ("image", "label", "instance")}


def load_label_maps(data_config, split: str) -> Tuple[List[str], Dict[str, np.ndarray]]:
  """Label maps (and edges) of a split without photos, e.g. Cityscapes `test_label`.

  Returns:
    (keys, {'label': int32 [N, H, W], 'edge': float32 [N, H, W]}) at the centre crop of
    `load_size` to `crop_size`.
  """
  layout, nc, dc, inst = data_settings(data_config)
  files = find_pairs(data_config.source, layout, split, use_instance=inst,
                     require_image=False)
  crop = _CenterCrop(tuple(int(s) for s in data_config.get("crop_size",
                                                            data_config.load_size)))
  to = _ToArrays(inst)
  exs = [to.map(crop.map(load_example(f, layout=layout, label_nc=nc, contain_dontcare_label=dc,
                                      load_size=data_config.load_size))) for f in files]
  return [f.key for f in files], {"label": np.stack([e["label"] for e in exs]),
                                  "edge": np.stack([e["edge"] for e in exs])}
