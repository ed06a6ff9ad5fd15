"""the trade API's log in: which OpenID Connect shop an app's oauth.token answers from

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_app_clients",
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["merchant_apps.app_id"], name="fk_gateway_app_clients_app_id_merchant_apps"
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oidc_clients.client_id"],
            name="fk_gateway_app_clients_client_id_oidc_clients",
        ),
        sa.PrimaryKeyConstraint("app_id", name="pk_gateway_app_clients"),
    )
    op.create_index(
        "ix_gateway_app_clients_client_id", "gateway_app_clients", ["client_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_app_clients_client_id", table_name="gateway_app_clients")
    op.drop_table("gateway_app_clients")
