"""jobs: indexes for the keyset-paged list (newest first, per project, by state or entry)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_project_id_id", "jobs", ["project_id", "id"])
    op.create_index("ix_jobs_project_state_id", "jobs", ["project_id", "state", "id"])
    op.create_index("ix_jobs_project_entry_id", "jobs", ["project_id", "entry", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_project_entry_id", table_name="jobs")
    op.drop_index("ix_jobs_project_state_id", table_name="jobs")
    op.drop_index("ix_jobs_project_id_id", table_name="jobs")
