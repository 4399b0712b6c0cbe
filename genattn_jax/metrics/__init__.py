"""genattn_jax.metrics."""
