"""Prefect's ``prefect.runner`` import paths; Flowyard's server runs deployments itself."""
