"""personal data encrypted at rest: names, addresses, photo and video references, correction values, envelopes

Each column moves to ``<name>_encrypted`` (Text, a ``credence_common.security.crypto`` token under the active
``CERTIFICATES_DATA_KEYS`` key); the outbox's envelopes are encrypted in place. Existing rows are encrypted in
this transaction with the keys the environment gives (refused outside development while they are the
development key), so run it with the service's ``CERTIFICATES_DATA_KEYS``. The old code cannot read the new
columns: stop certificates for the migration (events wait in their queues meanwhile).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table -> (primary key, ((plaintext column, its old type, nullable), ...)); frozen here, as of this revision
COLUMNS = {
    "certificates": ("certificate_id", (("holder_name", sa.String(length=40), False),
                                        ("photo_reference", sa.String(length=200), True),
                                        ("delivery_address", sa.String(length=200), True))),
    "correction_requests": ("request_id", (("current_value", sa.String(length=200), True),
                                           ("requested_value", sa.String(length=200), False))),
    "replacement_applications": ("application_id", (("identity_video_reference", sa.String(length=200), True),
                                                    ("corrected_holder_name", sa.String(length=40), True))),
}
# encrypted where they are: the outbox's envelopes (certificate.issued carries the holder's name)
SEALED_IN_PLACE = (("outbox", "seq", "envelope_json"),)
BATCH = 1000


class _Keys:
    """Loaded on first use: a database without rows migrates without any key (a fresh install, the tests)."""

    ring = None

    def __call__(self):
        if self.ring is None:
            from services.certificates.adapters.protection import keyring_from_environment

            self.ring = keyring_from_environment()
        return self.ring


def _rewrite(table: str, key: str | tuple[str, ...], pairs: tuple[tuple[str, str], ...], change) -> None:
    """Copies each ``source`` column into ``target`` through ``change`` (None stays None), in key order."""
    connection = op.get_bind()
    keys = (key,) if isinstance(key, str) else key
    names = {name for pair in pairs for name in pair} - set(keys)
    rows = sa.table(table, *(sa.column(name) for name in keys), *(sa.column(name) for name in names))
    last = None
    while True:
        query = sa.select(rows).order_by(*(rows.c[k] for k in keys)).limit(BATCH)
        if last is not None:
            query = query.where(sa.tuple_(*(rows.c[k] for k in keys)) > sa.tuple_(*last))
        found = connection.execute(query).mappings().all()
        if not found:
            return
        connection.execute(
            sa.update(rows).where(*(rows.c[k] == sa.bindparam(f"_key_{k}") for k in keys)),
            [{**{f"_key_{k}": row[k] for k in keys},
              **{target: None if row[source] is None else change(row[source]) for source, target in pairs}}
             for row in found])
        last = tuple(found[-1][k] for k in keys)


def upgrade() -> None:
    keys = _Keys()
    for table, (key, columns) in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, _, _ in columns:
                batch.add_column(sa.Column(f"{name}_encrypted", sa.Text(), nullable=True))
        _rewrite(table, key, tuple((name, f"{name}_encrypted") for name, _, _ in columns),
                 lambda value: keys().encrypt(value))
        with op.batch_alter_table(table) as batch:
            for name, _, nullable in columns:
                batch.drop_column(name)
                if not nullable:
                    batch.alter_column(f"{name}_encrypted", existing_type=sa.Text(), nullable=False)
    for table, key, column in SEALED_IN_PLACE:
        _rewrite(table, key, ((column, column),), lambda value: keys().encrypt(value))


def downgrade() -> None:
    keys = _Keys()
    for table, key, column in SEALED_IN_PLACE:
        _rewrite(table, key, ((column, column),), lambda value: keys().decrypt(value))
    for table, (key, columns) in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, old_type, _ in columns:
                batch.add_column(sa.Column(name, old_type, nullable=True))
        _rewrite(table, key, tuple((f"{name}_encrypted", name) for name, _, _ in columns),
                 lambda value: keys().decrypt(value))
        with op.batch_alter_table(table) as batch:
            for name, old_type, nullable in columns:
                batch.drop_column(f"{name}_encrypted")
                if not nullable:
                    batch.alter_column(name, existing_type=old_type, nullable=False)
