"""LGGAN (Tang et al., CVPR 2020) on ADE20K at 256x256.

The SPADE / GauGAN system of `ade20k_spade.py` (150 classes + don't care = 151 label channels,
286 → 256 crops, flips; 200 epochs, LGGAN supplementary Sec. 6.1; batch 32, our choice: the
paper states none) with LGGAN's generator and losses
as `cityscapes_lggan.py`. As the authors' ADE20K code, only the 51 most frequent classes get
their own local branch and the other 100 share one (`model.max_local_classes = 51`, 52
branches). The 52 branches at full resolution are the memory cost: they run as a scan over
chunks of 4 classes with rematerialisation (`model.class_chunk_size = 4`, `model.remat`), the
setting measured in `benchmarks/results/lggan_memory_cpu.json` (local branch + encoder + losses
at 256², batch 1: XLA plan 0.90 GiB, against 10.35 GiB for 151 unchunked branches; 2-core CPU).
Adam β2 0.9 (code default; text 0.999), spectral norm as the code (`model.sn_scope`). Table 3
rows are selectable as in `cityscapes_lggan.py` (`:S1` ... `:S5`, default S5 = LGGAN).

Paper (ADE20K, LGGAN Table 3 left): mIoU 41.6, Acc 81.8, FID 31.6; GauGAN 38.5 / 79.9 / 33.9.
Command: python train.py --config=configs/ade20k_lggan.py --workdir=runs/ade20k_lggan
  --config.data.source=/path/to/ADEChallengeData2016
Hardware / wall time / result: not yet measured.
"""

from configs import ade20k_spade, pairs_demo
from genattn_jax.training import semantic_experiments


def get_config(row: str = "S5"):
  c = semantic_experiments.with_lggan(ade20k_spade.get_config(), row)
  c.model.max_local_classes = 51
  c.model.class_chunk_size = 4
  c.model.remat = True
  return c


def get_test_config(row: str = "S5"):
  c = semantic_experiments.shrink_lggan_for_tests(
      pairs_demo.shrink_semantic_for_tests(get_config(row), label_source="ade20k"))
  c.model.class_chunk_size = 26  # two chunks: the scan path, few unrolled convs to compile
  return c
