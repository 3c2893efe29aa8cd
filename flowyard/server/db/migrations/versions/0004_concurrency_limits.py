"""global concurrency limits and their leases

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowyard.server.db._types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME = flowyard.server.db._types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "concurrency_limits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("slot_decay_per_second", sa.Float(), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("updated", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_concurrency_limits_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_limits")),
        sa.UniqueConstraint(
            "workspace_id", "name", name=op.f("uq_concurrency_limits_workspace_id_name")
        ),
    )
    with op.batch_alter_table("concurrency_limits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_concurrency_limits_workspace_id"), ["workspace_id"], unique=False
        )
    op.create_table(
        "concurrency_leases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lease_id", sa.Uuid(), nullable=False),
        sa.Column("limit_id", sa.Uuid(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("created", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["limit_id"],
            ["concurrency_limits.id"],
            name=op.f("fk_concurrency_leases_limit_id_concurrency_limits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_leases")),
    )
    with op.batch_alter_table("concurrency_leases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_concurrency_leases_limit_expires", ["limit_id", "expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_concurrency_leases_lease_id"), ["lease_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_concurrency_leases_flow_run_id"), ["flow_run_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("concurrency_leases")
    op.drop_table("concurrency_limits")
