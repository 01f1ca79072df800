"""personal data encrypted at rest: the roster's full names, event envelopes

``roster.full_name`` moves to ``full_name_encrypted`` (Text, a ``credence_common.security.crypto`` token under the
active ``SCORING_DATA_KEYS`` key); the outbox's envelopes (candidate_qualified carries the name) are encrypted
in place. Existing rows are encrypted in this transaction with the keys the environment gives (refused outside
development while they are the development key), so run it with the service's ``SCORING_DATA_KEYS``. The old
code cannot read the new column: stop scoring for the migration (events wait in their queues meanwhile).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

from credence_common.persistence.sealed import rewrite

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SEALED_IN_PLACE = (("outbox", "seq", "envelope_json"),)


class _Keys:
    """Loaded on first use: a database without rows migrates without any key (a fresh install, the tests)."""

    ring = None

    def __call__(self):
        if self.ring is None:
            from services.scoring.adapters.protection import DATA_KEYS

            self.ring = DATA_KEYS.from_environment()
        return self.ring


def upgrade() -> None:
    keys = _Keys()
    with op.batch_alter_table("roster") as batch:
        batch.add_column(sa.Column("full_name_encrypted", sa.Text(), nullable=True))
    rewrite(op.get_bind(), "roster", "ticket_number", (("full_name", "full_name_encrypted"),),
            lambda value: keys().encrypt(value))
    with op.batch_alter_table("roster") as batch:
        batch.drop_column("full_name")
        batch.alter_column("full_name_encrypted", existing_type=sa.Text(), nullable=False)
    for table, key, column in SEALED_IN_PLACE:
        rewrite(op.get_bind(), table, key, ((column, column),), lambda value: keys().encrypt(value))


def downgrade() -> None:
    keys = _Keys()
    for table, key, column in SEALED_IN_PLACE:
        rewrite(op.get_bind(), table, key, ((column, column),), lambda value: keys().decrypt(value))
    with op.batch_alter_table("roster") as batch:
        batch.add_column(sa.Column("full_name", sa.String(length=40), nullable=True))
    rewrite(op.get_bind(), "roster", "ticket_number", (("full_name_encrypted", "full_name"),),
            lambda value: keys().decrypt(value))
    with op.batch_alter_table("roster") as batch:
        batch.drop_column("full_name_encrypted")
        batch.alter_column("full_name", existing_type=sa.String(length=40), nullable=False)
