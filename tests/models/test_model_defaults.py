"""`models.model_defaults` gives one type (a plain dict) for every backbone name, and
`default_model_config` the same fields as a ConfigDict."""

import pytest

from genattn_jax import models

RESOLUTION = {"cyclegan": 256, "spade": 256}


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_model_defaults_is_a_plain_dict_matching_the_config(name):
  resolution = RESOLUTION.get(name, 32)
  defaults = models.model_defaults(name, resolution)
  assert type(defaults) is dict  # pylint: disable=unidiomatic-typecheck
  assert defaults["name"] == name
  assert models.default_model_config(name, resolution).to_dict() == defaults


def test_unknown_name_is_named():
  with pytest.raises(ValueError, match="name"):
    models.model_defaults("biggan", 32)
