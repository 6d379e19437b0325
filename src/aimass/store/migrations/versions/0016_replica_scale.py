"""deployment replicas: autoscaled runner processes in use and wanted

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployment_replicas") as batch:
        batch.add_column(sa.Column("replicas", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("desired_replicas", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment_replicas") as batch:
        batch.drop_column("desired_replicas")
        batch.drop_column("replicas")
