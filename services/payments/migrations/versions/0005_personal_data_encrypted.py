"""personal data encrypted at rest: orders' invoice details

``payment_orders.invoice_title`` and ``invoice_tax_number`` move to ``*_encrypted`` (Text, a
``credence_common.security.crypto`` token under the active ``PAYMENTS_DATA_KEYS`` key). Existing rows are encrypted in
this transaction with the keys the environment gives (refused outside development while they are the
development key), so run it with the service's ``PAYMENTS_DATA_KEYS``. The old code cannot read the new
columns: stop payments for the migration.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

from credence_common.persistence.sealed import rewrite

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (("invoice_title", sa.String(length=100)), ("invoice_tax_number", sa.String(length=20)))


class _Keys:
    """Loaded on first use: a database without rows migrates without any key (a fresh install, the tests)."""

    ring = None

    def __call__(self):
        if self.ring is None:
            from services.payments.adapters.protection import DATA_KEYS

            self.ring = DATA_KEYS.from_environment()
        return self.ring


def upgrade() -> None:
    keys = _Keys()
    with op.batch_alter_table("payment_orders") as batch:
        for name, _ in COLUMNS:
            batch.add_column(sa.Column(f"{name}_encrypted", sa.Text(), nullable=True))
    rewrite(op.get_bind(), "payment_orders", "order_number", tuple((name, f"{name}_encrypted") for name, _ in COLUMNS),
            lambda value: keys().encrypt(value))
    with op.batch_alter_table("payment_orders") as batch:
        for name, _ in COLUMNS:
            batch.drop_column(name)


def downgrade() -> None:
    keys = _Keys()
    with op.batch_alter_table("payment_orders") as batch:
        for name, old_type in COLUMNS:
            batch.add_column(sa.Column(name, old_type, nullable=True))
    rewrite(op.get_bind(), "payment_orders", "order_number", tuple((f"{name}_encrypted", name) for name, _ in COLUMNS),
            lambda value: keys().decrypt(value))
    with op.batch_alter_table("payment_orders") as batch:
        for name, _ in COLUMNS:
            batch.drop_column(f"{name}_encrypted")
