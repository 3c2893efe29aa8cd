"""Deployments, and starting runs of them."""

from __future__ import annotations

import uuid

from flowyard.client._base import ResourceMethods
from flowyard.client._errors import InvalidArgument
from flowyard.client._http import query, segment
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr


def split_deployment_name(name: str) -> tuple[str, str]:
    """``"flow/deployment"`` as ``("flow", "deployment")``.

    A deployment name cannot contain ``/``, so the last ``/`` separates the two.
    """
    flow_name, sep, deployment_name = name.rpartition("/")
    if not sep or not flow_name or not deployment_name:
        raise InvalidArgument(f"expected a deployment name as 'flow/deployment', got {name!r}")
    return flow_name, deployment_name


class DeploymentMethods(ResourceMethods):
    async def upsert_deployment(self, data: dep.DeploymentCreate) -> dep.Deployment:
        """Create the deployment, or update the one with the same flow and deployment name."""
        # Create-or-update by name is idempotent: repeating it converges on the same row.
        return await self._one(dep.Deployment, "POST", "/deployments", data, idempotent=True)

    async def list_deployments(
        self,
        *,
        work_pool: str | None = None,
        flow_name: str | None = None,
        tag: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[dep.Deployment]:
        """Deployments, filtered by pool name, flow name or tag."""
        params = query(
            work_pool=work_pool, flow_name=flow_name, tag=tag, limit=limit, offset=offset
        )
        return await self._many(dep.Deployment, "/deployments", params=params)

    async def read_deployment(self, deployment_id: uuid.UUID | str) -> dep.Deployment:
        """A deployment by id."""
        return await self._one(dep.Deployment, "GET", f"/deployments/{segment(deployment_id)}")

    async def read_deployment_by_name(self, name: str) -> dep.Deployment:
        """A deployment by its full name, ``"flow/deployment"``."""
        flow_name, deployment_name = split_deployment_name(name)
        path = f"/deployments/name/{segment(flow_name)}/{segment(deployment_name)}"
        return await self._one(dep.Deployment, "GET", path)

    async def update_deployment(
        self, deployment_id: uuid.UUID | str, data: dep.DeploymentUpdate
    ) -> dep.Deployment:
        """Change the fields set in ``data``."""
        path = f"/deployments/{segment(deployment_id)}"
        return await self._one(dep.Deployment, "PATCH", path, data)

    async def delete_deployment(self, deployment_id: uuid.UUID | str) -> None:
        """Delete a deployment."""
        await self._send("DELETE", f"/deployments/{segment(deployment_id)}")

    async def create_flow_run(
        self, deployment_id: uuid.UUID | str, data: fr.FlowRunCreate | None = None
    ) -> fr.FlowRun:
        """Start a run of a deployment; parameters are validated against its schema.

        With an ``idempotency_key`` already used, the answer is the existing run,
        which is also what makes such a request safe to retry.
        """
        data = data or fr.FlowRunCreate()
        path = f"/deployments/{segment(deployment_id)}/runs"
        return await self._one(
            fr.FlowRun, "POST", path, data, idempotent=data.idempotency_key is not None
        )

    async def claim_served_runs(self, data: dep.ServedClaim) -> list[fr.FlowRun]:
        """Due runs of served deployments (``flow.serve()``), moved to PENDING for ``data.worker``."""
        response = await self._send("POST", "/deployments/claim", data)
        return [fr.FlowRun.model_validate(item) for item in response.json()]
