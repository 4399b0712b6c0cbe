"""genattn_jax.training."""
