"""genattn_jax.losses."""
