"""Input pipelines: tfds (ArrayRecord) sources served by grain; local folders via tfds."""

from genattn_jax.data.local_images import LocalImages, prepare_local_images
from genattn_jax.data.pipeline import create_data_loader, get_data_source

__all__ = ["LocalImages", "prepare_local_images", "create_data_loader", "get_data_source"]
