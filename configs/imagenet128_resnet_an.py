"""ImageNet 128x128 class-conditional ResNet SNGAN + AN, the an paper's setting (Sec. 4, 5.1).

Five residual up-blocks in G with AN (n=16) inside the third (32x32 map), five residual
blocks in D (`model.d_num_blocks = 5`: 128 → 4, widths 64·(1, 2, 4, 8, 16); the library's
default ImageNet-128 D adds a sixth, non-downsampling 16× block) with AN inside the first.
"Inside" is the paper's position (Sec. 4: "between the convolutional layer and the
activation layer" of the residual block, Fig. 6): `position='in_block'` puts AN right after
the block's first conv (G: before its second BN → ReLU; D: before its ReLU). Orthogonal
regulariser (Eq. 1) on G's and D's AN, weight 1e-4 each (`training.ortho_weight`,
`training.d_ortho_weight`; the paper gives no value). Spectral norm in G and D; hinge loss;
TTUR Adam G 1e-4 / D 4e-4, β=(0, 0.999); batch 256. FID of the raw generator (the paper does
not mention an EMA of G; `eval.fid_params='raw'`, both reported with `eval.fid_both`).
`training.num_steps` = 1M, the baselines' length (Table 1: 1000K; AN itself is reported at
880K).

Paper (Table 1): FID 17.84, intra-FID 83.40, IS 46.57 after 880k iterations (SN-GAN 27.62 /
92.4 / 36.80, SA-GAN 18.65 / 83.7 / 52.52: `imagenet128_resnet_sngan.py`,
`imagenet128_resnet_sagan.py`). FID, intra-FID and IS "are computed on 50k randomly generated
images" (Sec. 5, Evaluation Metrics): `eval.num_fake = 50_000` and intra-FID over the 1,000
classes with 50 generated images each (`eval.intra_fid_classes`, `eval.intra_fid_per_class`;
`metrics/intra_fid.py`), the real side being at most 50 validation images per class.

Command (tfds `imagenet_resized`-style data or a local class-folder copy at 128²):
  python train.py --config=configs/imagenet128_resnet_an.py --workdir=runs/imagenet128_an \
      --config.data.source=/path/to/imagenet128
Hardware / wall time / result: not yet measured (needs a TPU pod slice or a multi-GPU host).
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("resnet", 128)
  c.name = "imagenet128_resnet_an"
  c.model.num_classes = 1000
  c.model.g_blocks = [{"block": "an", "resolutions": [32], "position": "in_block"}]
  c.model.d_blocks = [{"block": "an", "resolutions": [64], "position": "in_block"}]
  c.model.d_num_blocks = 5
  c.data.source = "imagenet2012"
  c.data.split = "train"
  c.eval.real_split = "validation"
  c.eval.num_real = c.eval.num_fake = 50_000
  c.training.batch_size = 256
  c.training.num_steps = 1_000_000
  c.training.loss = "hinge"
  c.training.ortho_weight = 1e-4
  c.training.d_ortho_weight = 1e-4
  c.eval.fid_params = "raw"
  c.eval.fid_both = True
  c.eval.intra_fid_classes = 1000
  c.eval.intra_fid_per_class = 50
  c.optimizer.g_lr, c.optimizer.d_lr = 1e-4, 4e-4
  c.optimizer.b1, c.optimizer.b2 = 0.0, 0.999
  return c


def get_test_config():
  c = shrink_for_tests(get_config())
  c.model.resolution = c.data.image_size = 32
  c.model.num_classes = 10
  c.model.g_blocks = [{"block": "an", "resolutions": [16], "position": "in_block"}]
  c.model.d_blocks = [{"block": "an", "resolutions": [16], "position": "in_block"}]
  c.model.d_num_blocks = 0
  c.eval.intra_fid_classes = 0  # 1,000 classes do not fit the 10-class test model
  return c
