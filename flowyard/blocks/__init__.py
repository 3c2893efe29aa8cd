"""Blocks: configuration objects read by flows. Only ``system.Secret`` for now."""
