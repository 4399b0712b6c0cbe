"""Defaults shared by every experiment config in `configs/` (ml_collections)."""

import os

import ml_collections

# Real CIFAR-10 JPEGs committed with the tests (tests/fixtures/cifar10_mini, 60 images).
TEST_FIXTURE_IMAGES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "fixtures", "cifar10_mini")


def base_config(model_name: str = "sndcgan", resolution: int = 32) -> ml_collections.ConfigDict:
  """A complete training config; experiment files override fields.

  Sections:
    model:      `genattn_jax.models.default_model_config` fields.
    data:       `genattn_jax.data.pipeline` fields (source, data_dir, split, image_size, ...).
    training:   batch_size (global, per D update), num_steps (G updates), n_critic, loss,
                r1_gamma, r1_interval, gp_weight, ortho_weight (AN's Eq. 1 on G), ema_decay,
                ema_warmup_steps.
    optimizer:  Adam g_lr, d_lr, b1, b2, eps, grad_clip (TTUR when g_lr != d_lr).
    parallel:   backend 'jit' (Mesh + NamedSharding) or 'pmap'; distributed (multi-host
                `jax.distributed.initialize()`) with coordinator_address, num_processes,
                process_id, cpu_collectives (see `parallel.initialize_distributed`).
    checkpoint: every_steps, keep (newest K; the best-FID one is kept too), async_save,
                allow_restart_from_scratch (False: a workdir whose checkpoints are all
                unusable stops the run; True: they are moved aside and training starts at 0).
    task:       name of the training task (`genattn_jax.training.tasks`): 'noise' (noise →
                image, the default); tasks add their own fields here.
    eval:       every_steps (0 = never; the last step is evaluated only when it is a
                multiple), num_real, num_fake, real_split, real_stats (a precomputed .npz
                used instead of real_split), batch_size, grid_rows.
    progress_bar: tqdm bars (training with ETA, FID) on stderr when it is a terminal.

  Every run checks these fields first (`genattn_jax.training.validate`).
  """
  from genattn_jax import models  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict()
  c.name = ""
  c.seed = 0
  c.log_every_steps = 100
  c.progress_bar = True
  c.model = models.default_model_config(model_name, resolution)

  c.data = ml_collections.ConfigDict()
  c.data.source = "cifar10"
  c.data.data_dir = "~/tensorflow_datasets"
  c.data.split = "train"
  c.data.image_size = resolution
  c.data.random_flip = True
  c.data.channels = 3
  c.data.skip_unreadable = False  # local folders: skip undecodable images (count logged)

  c.training = ml_collections.ConfigDict()
  c.training.batch_size = 64
  c.training.num_steps = 100_000
  c.training.n_critic = 1
  c.training.loss = "hinge"
  c.training.r1_gamma = 0.0
  c.training.r1_interval = 1
  c.training.gp_weight = 0.0
  c.training.ortho_weight = 0.0
  c.training.ema_decay = 0.9999
  c.training.ema_warmup_steps = 1000

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.g_lr = 2e-4
  c.optimizer.d_lr = 2e-4
  c.optimizer.b1 = 0.0
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8   # Adam's offset, as optax / torch.optim.Adam
  c.optimizer.grad_clip = 0.0

  c.task = ml_collections.ConfigDict()
  c.task.name = "noise"

  c.parallel = ml_collections.ConfigDict()
  c.parallel.backend = "jit"
  c.parallel.distributed = False
  c.parallel.coordinator_address = ""  # '' = detected (TPU pod, SLURM, JAX_* variables)
  c.parallel.num_processes = 0         # 0 = detected
  c.parallel.process_id = -1           # -1 = detected
  c.parallel.cpu_collectives = "gloo"  # cross-process collectives of CPU devices

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 2000
  c.checkpoint.keep = 3
  c.checkpoint.async_save = True
  c.checkpoint.allow_restart_from_scratch = False

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 10_000
  c.eval.num_real = 10_000
  c.eval.num_fake = 10_000
  c.eval.real_split = "test"
  c.eval.real_stats = ""  # optional precomputed real statistics (.npz with mu, sigma)
  c.eval.batch_size = 100
  c.eval.grid_rows = 8
  return c


def shrink_for_tests(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Tiny widths, steps and evaluation sizes so a config runs in seconds on CPU."""
  c.model.g_width = c.model.d_width = 1 / 16
  if "upsample" in c.model:
    c.model.upsample = "nearest"
  c.training.batch_size = 8
  c.training.num_steps = 2
  c.training.ema_warmup_steps = 0
  c.log_every_steps = 1
  c.checkpoint.every_steps = 1
  c.checkpoint.async_save = False
  c.eval.every_steps = 2
  c.eval.num_real = c.eval.num_fake = 16
  c.eval.batch_size = 8
  c.eval.grid_rows = 2
  c.data.source = TEST_FIXTURE_IMAGES
  c.data.data_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "genattn_tfds_test")
  c.data.split = "train"
  c.eval.real_split = "test"
  return c


def semantic_config(source: str, layout: str, label_nc: int, dontcare: bool, instance: bool,
                    size, load_size=None):
  """A 'semantic' task config with SPADE's settings (Park et al. 2019, official options).

  Model `models.spade.spade_model_config` at `size` = (H, W); data = `data/paired.py` fields
  (layout, load_size, crop_size, label_nc, contain_dontcare_label, use_instance); task =
  `training/tasks/semantic.py` fields (lambda_feat 10, lambda_vgg 10, lambda_kld 0.05,
  vgg_arch, vgg_weights, vgg_normalize, vgg_downsample, eval_ema); hinge loss, Adam
  β = (0, 0.9), G 1e-4 / D 4e-4, no EMA. Experiment files set the schedule (`num_steps`,
  `optimizer.decay_start`).
  """
  from genattn_jax.models import spade as spade_lib  # pylint: disable=g-import-not-at-top
  c = base_config("sndcgan", 32)
  c.model = spade_lib.spade_model_config(int(size[0]))
  c.model.image_size = list(size)
  c.data.source = source
  c.data.layout = layout
  c.data.data_dir = "runs/tfds"
  c.data.split = "train"
  c.data.load_size = list(load_size or size)
  c.data.crop_size = list(size)
  c.data.random_flip = True
  c.data.label_nc = label_nc
  c.data.contain_dontcare_label = dontcare
  c.data.use_instance = instance
  c.data.image_size = int(size[0])
  c.task.name = "semantic"
  c.task.lambda_feat = 10.0
  c.task.lambda_vgg = 10.0
  c.task.lambda_kld = 0.05
  c.task.vgg_arch = "vgg16"
  c.task.vgg_weights = ""
  c.task.vgg_normalize = "none"
  c.task.vgg_downsample = 1
  c.task.eval_ema = False
  c.training.loss = "hinge"
  c.training.n_critic = 1
  c.training.ema_decay = 0.0  # SPADE keeps no EMA; ema_params == g_params
  c.training.ema_warmup_steps = 0
  c.optimizer.g_lr, c.optimizer.d_lr = 1e-4, 4e-4
  c.optimizer.b1, c.optimizer.b2 = 0.0, 0.9
  c.eval.split = "val"
  c.eval.segmenter = ""
  c.eval.segment_label_map = ""
  c.eval.segment_num_classes = label_nc
  c.eval.segment_ignore_index = 255
  return c
