"""Adversarial losses (`adversarial`) and discriminator regularisers (`regularizers`)."""

from genattn_jax.losses.adversarial import (ALIASES, LOSSES, GANLoss, get_loss, hinge_d_loss,
                                            hinge_g_loss, hinge_loss, least_squares_d_loss,
                                            least_squares_g_loss, least_squares_loss,
                                            loss_names, non_saturating_d_loss,
                                            non_saturating_g_loss, non_saturating_loss,
                                            relativistic_hinge_d_loss,
                                            relativistic_hinge_g_loss,
                                            relativistic_hinge_loss, wasserstein_d_loss,
                                            wasserstein_g_loss, wasserstein_loss)
from genattn_jax.losses.regularizers import gradient_penalty, r1_penalty

__all__ = [
    "ALIASES", "LOSSES", "GANLoss", "get_loss", "gradient_penalty", "hinge_d_loss",
    "hinge_g_loss", "hinge_loss", "least_squares_d_loss", "least_squares_g_loss",
    "least_squares_loss", "loss_names", "non_saturating_d_loss", "non_saturating_g_loss",
    "non_saturating_loss", "r1_penalty", "relativistic_hinge_d_loss",
    "relativistic_hinge_g_loss", "relativistic_hinge_loss", "wasserstein_d_loss",
    "wasserstein_g_loss", "wasserstein_loss",
]
