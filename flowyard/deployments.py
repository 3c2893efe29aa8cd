"""Running and building deployments (``from flowyard.deployments import run_deployment``)."""

from __future__ import annotations

from flowyard.sdk import DeploymentSpec, deploy, run_deployment, serve

__all__ = ["DeploymentSpec", "deploy", "run_deployment", "serve"]
