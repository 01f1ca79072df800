"""Staff roles (separation of duties): each staff account holds its roles, every change is kept

Revision ID: 0006
Revises: 0005

Before this revision every staff account could do everything. Each existing account keeps exactly that: it is given
every role there is at this revision (written out here, not read from the code, so the migration means the same
whenever it runs), and the grant is recorded in ``staff_role_changes`` like any other. Administrators then take away
what each account should not do. Accounts created from now on hold only the roles they are given.
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# every role of credence_common/contracts/staff_roles.py at this revision, in its order
EVERY_ROLE_AT_0006 = "recorder,expert,publisher,registrar,finance,support,admin"


def upgrade() -> None:
    op.add_column("staff_accounts", sa.Column("roles", sa.String(length=200), nullable=False, server_default=""))
    op.create_table(
        "staff_role_changes",
        sa.Column("change_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("changed_by", sa.String(length=80), nullable=False),
        sa.Column("roles_before", sa.String(length=200), nullable=False),
        sa.Column("roles_after", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["staff_accounts.username"]),
        sa.PrimaryKeyConstraint("change_id"),
    )
    op.create_index("ix_staff_role_changes_username", "staff_role_changes", ["username"])
    op.execute(sa.text(
        "INSERT INTO staff_role_changes (username, changed_by, roles_before, roles_after, reason, changed_at) "
        "SELECT username, 'migration:0006', '', :roles, 'held every duty before staff roles existed', "
        "CURRENT_TIMESTAMP FROM staff_accounts").bindparams(roles=EVERY_ROLE_AT_0006))
    op.execute(sa.text("UPDATE staff_accounts SET roles = :roles").bindparams(roles=EVERY_ROLE_AT_0006))


def downgrade() -> None:
    op.drop_index("ix_staff_role_changes_username", table_name="staff_role_changes")
    op.drop_table("staff_role_changes")
    with op.batch_alter_table("staff_accounts") as batch_op:
        batch_op.drop_column("roles")
