"""monitoring: events (drift, alerts) and node history

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_monitoring_events_project_time", "monitoring_events", ["project", "created_at"]
    )
    op.create_table(
        "node_samples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("node", sa.String(256), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=False),
        sa.Column("memory_used_bytes", sa.Float(), nullable=False),
        sa.Column("memory_total_bytes", sa.Float(), nullable=False),
        sa.Column("disk_used_bytes", sa.Float(), nullable=False),
        sa.Column("disk_total_bytes", sa.Float(), nullable=False),
        sa.Column("net_rx_bytes_per_s", sa.Float(), nullable=False),
        sa.Column("net_tx_bytes_per_s", sa.Float(), nullable=False),
        sa.Column("gpu_percent", sa.Float(), nullable=True),
    )
    op.create_index("ix_node_samples_node_time", "node_samples", ["node", "resolution_s", "at"])


def downgrade() -> None:
    op.drop_index("ix_node_samples_node_time", table_name="node_samples")
    op.drop_table("node_samples")
    op.drop_index("ix_monitoring_events_project_time", table_name="monitoring_events")
    op.drop_table("monitoring_events")
