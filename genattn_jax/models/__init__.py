"""genattn_jax.models."""
