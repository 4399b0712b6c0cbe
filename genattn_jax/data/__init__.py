"""genattn_jax.data."""
