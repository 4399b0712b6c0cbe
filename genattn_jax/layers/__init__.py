"""Blocks from the five papers and their baselines (filled in as modules land)."""
