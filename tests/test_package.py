"""Package-level checks."""

import re

import genattn_jax


def test_version_is_semver():
  assert re.fullmatch(r"\d+\.\d+\.\d+", genattn_jax.__version__)
