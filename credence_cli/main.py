"""``credence``: the operator's command line, one place for every routine and emergency task.

    credence status                          every service: answering?, consumers, outbox backlog, dead letters
    credence migrate [SERVICE]               bring the databases to the code's schema (all by default)
    credence staff create USERNAME           a staff account (password asked for, or --password-stdin; --role R ...)
    credence staff list                      every staff account with its roles
    credence staff roles USERNAME --role R --reason TEXT    set an account's roles (recorded; --none: take all)
    credence results import FILE             an exam centre's results file (CSV or JSON Lines), streamed
    credence batches list | close BATCH_ID   certificate production batches
    credence payments reconcile [DAY]        the provider's statement against our ledger (and refunds, incidents)
    credence outbox status | republish       events not yet published, per service; publish again after a restore
    credence dead-letters list|show|replay|purge SERVICE
    credence verification rebuild            the public read model, replayed from its event log
    credence queues status|migrate           the event and RPC queues and their type
    credence identity key-status|rotate-keys the keys that protect personal data
    credence certificates key-status|rotate-keys    ... and those of certificates (names, addresses)
    credence scoring key-status|rotate-keys         ... and those of scoring (the roster's names)
    credence payments key-status|rotate-keys        ... and those of payments (invoice details)
    credence actor-keys [KEY_ID]             a new key pair for signing actors (gateway, CLI) and checking them

Settings come from the environment, as the services read them: ``AMQP_URI``, ``ACTOR_SIGNING_KEY`` (for the
commands that act as staff through a service) and ``<SERVICE>_DB_URI`` (each
command needs only what it touches; on Kubernetes run it in that service's pod, or in a toolbox pod with the
Secrets mounted). Commands that change what a running service owns in memory (closing a batch, creating an
account) go through the service by RPC; the others act on the service's database with its own code, inside one
transaction each. Every run has a correlation id, printed by the commands that call a service, so its traces
can be found in the services' logs.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import services
from credence_cli.rpc import RemoteRefusal, RpcClient, Unanswered, pika_parameters
from credence_common.bus import dead_letters, queue_admin
from credence_common.config import load_config
from credence_common.contracts.staff_roles import DUTIES, STAFF_ROLES
from credence_common.observability import logs
from credence_common.persistence import migrations
from credence_common.security.actor_tokens import DEVELOPMENT_SIGNING_KEY, ActorSigner, KeySpecError, new_key_pair
from deploy.processes import SERVICE_NAMES
from services.certificates import cli as certificates_cli
from services.identity import cli as identity_cli
from services.payments import cli as payments_cli
from services.payments import keys_cli as payments_keys_cli
from services.scoring import cli as scoring_cli
from services.scoring import keys_cli as scoring_keys_cli
from services.verification import cli as verification_cli

DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"
SERVICES_DIR = Path(services.__file__).resolve().parent

app = typer.Typer(help="Credence operations: the operator's command line (docs/operations.md).",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)
staff_app = typer.Typer(help="Staff accounts of the authority.", no_args_is_help=True)
results_app = typer.Typer(help="Exam results.", no_args_is_help=True)
batches_app = typer.Typer(help="Certificate production batches.", no_args_is_help=True)
outbox_app = typer.Typer(help="Each service's outbox: events written with the change that caused them.",
                         no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
app.add_typer(staff_app, name="staff")
app.add_typer(results_app, name="results")
app.add_typer(batches_app, name="batches")
app.add_typer(payments_cli.app, name="payments", help="Payments: reconciliation, refunds, incidents.")
app.add_typer(dead_letters.app, name="dead-letters", help="Messages the event handlers gave up on.")
app.add_typer(verification_cli.app, name="verification", help="The public verification read model.")
app.add_typer(queue_admin.build_app(), name="queues", help="The event and RPC queues: type, depth, consumers.")
app.add_typer(identity_cli.app, name="identity", help="The keys that protect personal data.")
app.add_typer(certificates_cli.app, name="certificates", help="The keys that protect personal data in certificates.")
app.add_typer(scoring_keys_cli.app, name="scoring", help="The keys that protect personal data in scoring.")
# beside reconciliation and refunds, as `credence payments key-status|rotate-keys`
payments_cli.app.registered_commands.extend(payments_keys_cli.app.registered_commands)
results_app.command("import")(scoring_cli.import_results)

console = Console()
CORRELATION_ID = "cli-" + logs.new_correlation_id()


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI


def service_settings(service: str) -> dict:
    """The service's own config file, read with this environment (so ``<SERVICE>_DB_URI`` applies)."""
    return load_config(SERVICES_DIR / service / "config.yml")


def operator() -> str:
    return f"cli:{os.environ.get('CREDENCE_OPERATOR') or getpass.getuser()}"


def staff_actor(*staff_roles: str) -> str:
    # The services believe only a signed actor (credence_common/security/actor_tokens.py): the CLI signs with the key in
    # ACTOR_SIGNING_KEY, as the gateway does (the development key by default, which staging and production
    # refuse). The subject names the operator, for the records that say who did it (e.g. a batch's closed_by).
    # ``staff_roles``: the staff roles the command needs (credence_common/contracts/staff_roles.py), and only those: the
    # holder of the signing key could sign any, but each command acts in its one duty.
    try:
        signer = ActorSigner.from_spec(os.environ.get("ACTOR_SIGNING_KEY") or DEVELOPMENT_SIGNING_KEY,
                                       int(os.environ.get("ACTOR_TOKEN_LIFETIME_SECONDS") or 90), issuer="cli")
    except (KeySpecError, ValueError) as problem:
        console.print(f"[red]ACTOR_SIGNING_KEY: {problem}[/red]")
        raise typer.Exit(2) from None
    return signer.sign(operator(), "staff", staff_roles=staff_roles)


def call(service: str, method: str, *args, timeout: float = 30.0):
    """An RPC to the running service; a refusal or silence ends the command with a clear message."""
    try:
        with RpcClient(amqp_uri(), CORRELATION_ID, timeout=timeout) as client:
            return client.call(service, method, *args)
    except RemoteRefusal as refusal:
        console.print(f"[red]{service} refused: {refusal.message}[/red]" + (f" ({refusal.code})" if refusal.code
                                                                            else ""))
        raise typer.Exit(1) from None
    except Unanswered as silence:
        console.print(f"[red]{silence}[/red]")
        raise typer.Exit(3) from None
    except OSError as exc:  # pika's AMQPConnectionError is one
        hosts = ", ".join(str(node.host) for node in pika_parameters(amqp_uri()))
        console.print(f"[red]the broker at {hosts} cannot be reached: {exc}[/red]")
        raise typer.Exit(3) from None
    finally:
        # on standard error, so that --json output stays parseable
        Console(stderr=True).print(f"[dim]correlation id {CORRELATION_ID}[/dim]", highlight=False)


@app.command("actor-keys")
def actor_keys(key_id: str = typer.Argument(None, help="the new key's id (default: today's date, a<YYYYMMDD>)")
               ) -> None:
    """Print a new Ed25519 pair: the private half for ACTOR_SIGNING_KEY (gateway, CLI), the public half to add
    to every service's ACTOR_VERIFY_KEYS (before the gateway starts signing with it)."""
    try:
        signing, verifying = new_key_pair(key_id or datetime.now(UTC).strftime("a%Y%m%d"))
    except KeySpecError as problem:
        console.print(f"[red]{problem}[/red]")
        raise typer.Exit(2) from None
    print(f"ACTOR_SIGNING_KEY={signing}")
    print(f"ACTOR_VERIFY_KEYS entry: {verifying}")


def chosen_services(service: str | None) -> tuple[str, ...]:
    if service is None or service == "all":
        return SERVICE_NAMES
    if service not in SERVICE_NAMES:
        console.print(f"[red]{service!r} is not a service; choose one of {', '.join(SERVICE_NAMES)}[/red]")
        raise typer.Exit(2)
    return (service,)


# --- migrate -------------------------------------------------------------------------------------------

@app.command()
def migrate(service: str = typer.Argument(None, help="only this service's database (default: all)")) -> None:
    """Bring each service's database to the schema this code expects (alembic; a no-op when it already is)."""
    names = chosen_services(service)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("migrating", total=len(names))
        for name in names:
            progress.update(task, description=f"migrating {name}")
            migrations.upgrade(name, service_settings(name)["DB_URI"])
            progress.advance(task)
    console.print(f"migrated: {', '.join(names)}")


# --- staff ---------------------------------------------------------------------------------------------

ROLE_HELP = "a staff role, repeat for several: " + "; ".join(f"{role} ({duty})" for role, duty in DUTIES.items())


def _roles(roles: list[str] | None) -> list[str]:
    unknown = sorted(set(roles or ()) - set(STAFF_ROLES))
    if unknown:
        console.print(f"[red]unknown staff role(s) {', '.join(unknown)}: the roles are {', '.join(STAFF_ROLES)}[/red]")
        raise typer.Exit(2)
    return list(roles or ())


def _shown(roles: list[str]) -> str:
    return ", ".join(roles) if roles else "none (it may sign in and do nothing)"


@staff_app.command("create")
def create_staff(username: str = typer.Argument(..., help="the login name"),
                 display_name: str = typer.Option(None, "--display-name", help="shown in records (default: username)"),
                 roles: list[str] = typer.Option(None, "--role", help=ROLE_HELP),
                 password_stdin: bool = typer.Option(False, "--password-stdin",
                                                     help="read the password from standard input")) -> None:
    """Create a staff account with its roles (identity checks the password's strength and that the name is free).
    Without --role the account holds none: it may sign in and do nothing until `credence staff roles`."""
    wanted = _roles(roles)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    account = call("identity", "create_staff_account", staff_actor("admin"),
                   {"username": username, "display_name": display_name or username, "password": password,
                    "roles": wanted})
    console.print(f"staff account [bold]{account['username']}[/bold] ({account['display_name']}) created; roles: "
                  f"{_shown(account.get('roles', []))}")


@staff_app.command("list")
def list_staff(as_json: bool = typer.Option(False, "--json", help="print the accounts as JSON")) -> None:
    """Every staff account with its roles."""
    accounts = call("identity", "staff_accounts", staff_actor("admin"))["accounts"]
    if as_json:
        print(json.dumps(accounts, ensure_ascii=False, indent=2))
        return
    table = Table("username", "display name", "roles")
    for account in accounts:
        table.add_row(account["username"], account["display_name"], ", ".join(account["roles"]) or "-")
    console.print(table)


@staff_app.command("roles")
def set_staff_roles(username: str = typer.Argument(..., help="the account's login name"),
                    roles: list[str] = typer.Option(None, "--role", help=ROLE_HELP),
                    none: bool = typer.Option(False, "--none", help="take every role away"),
                    reason: str = typer.Option(..., "--reason", help="why, for the record of role changes")) -> None:
    """Set an account's roles: exactly the --role options given (its whole set from now on). The change is recorded
    with the operator and the reason, and counts from the account's next sign-in or refresh."""
    wanted = _roles(roles)
    if not wanted and not none:
        console.print("[red]name the roles with --role, or take them all away with --none[/red]")
        raise typer.Exit(2)
    if wanted and none:
        console.print("[red]--none and --role exclude each other[/red]")
        raise typer.Exit(2)
    account = call("identity", "set_staff_roles", staff_actor("admin"), username,
                   {"roles": wanted, "reason": reason})
    console.print(f"staff account [bold]{account['username']}[/bold] now holds: {_shown(account['roles'])} "
                  "(from its next sign-in)")


# --- production batches --------------------------------------------------------------------------------

@batches_app.command("list")
def list_batches(as_json: bool = typer.Option(False, "--json", help="print the batches as JSON")) -> None:
    """Every production batch, newest first."""
    answer = call("certificates", "production_batches", staff_actor("registrar"))
    if as_json:
        print(json.dumps(answer["batches"], ensure_ascii=False, indent=2))
        return
    table = Table("batch id", "number", "status", "certificates", "created", "closed", "closed by")
    for batch in answer["batches"]:
        table.add_row(batch["batch_id"], str(batch["batch_number"]), batch["status"], str(batch["certificate_count"]),
                      batch["created_at"][:16], (batch.get("closed_at") or "")[:16], batch.get("closed_by") or "")
    console.print(table)


@batches_app.command("close")
def close_batch(batch_id: str = typer.Argument(..., help="as `credence batches list` shows it")) -> None:
    """Close a batch for printing: no certificate joins it afterwards (new ones open the next batch)."""
    batch = call("certificates", "close_batch", staff_actor("registrar"), batch_id)
    console.print(f"batch {batch['batch_number']} closed with {batch['certificate_count']} certificates "
                  f"by {batch.get('closed_by')}")


# --- outbox ----------------------------------------------------------------------------------------------

def _outbox_table():
    # the columns the CLI touches, typed as every service's outbox is (credence_common/persistence/messaging.py), so
    # that
    # times compare and read back the same way on SQLite and PostgreSQL
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from credence_common.persistence.types import UTCDateTime

    return Table("outbox", MetaData(), Column("seq", Integer, primary_key=True), Column("event_type", String),
                 Column("created_at", UTCDateTime()), Column("published_at", UTCDateTime()),
                 Column("attempts", Integer))


OUTBOX = _outbox_table()


def outbox_state(service: str) -> dict:
    """Pending events, the age of the oldest and the most attempts one has taken, read from the service's
    own database (one short read)."""
    from sqlalchemy import func, select

    from credence_common.persistence.db import make_engine

    engine = make_engine(service_settings(service)["DB_URI"])
    try:
        with engine.connect() as connection:
            pending, attempts = connection.execute(
                select(func.count(), func.max(OUTBOX.c.attempts)).where(OUTBOX.c.published_at.is_(None))).one()
            oldest = connection.execute(select(OUTBOX.c.created_at).where(OUTBOX.c.published_at.is_(None))
                                        .order_by(OUTBOX.c.seq).limit(1)).scalar()
            published = connection.execute(
                select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_not(None))).scalar_one()
    finally:
        engine.dispose()
    age = None if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
    return {"pending": pending, "oldest_pending_seconds": age, "max_attempts": attempts or 0,
            "published": published}


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


@outbox_app.command("status")
def outbox_status(service: str = typer.Argument(None, help="only this service (default: all)"),
                  as_json: bool = typer.Option(False, "--json", help="print the state as JSON")) -> None:
    """Events written but not yet published: a backlog that grows or ages means the relay cannot publish.
    Exit code 1 when an event has waited over a minute or a database cannot be read."""
    table = Table("service", "pending", "oldest pending", "most attempts", "published (kept)")
    states, troubled = {}, False
    for name in chosen_services(service):
        try:
            state = states[name] = outbox_state(name)
        except Exception as exc:  # one unreachable database must not hide the others
            states[name] = {"error": f"unreachable: {type(exc).__name__}"}
            table.add_row(name, f"[red]{states[name]['error']}[/red]", "", "", "")
            troubled = True
            continue
        stale = (state["oldest_pending_seconds"] or 0) > 60
        troubled |= stale
        oldest = ("[red]" if stale else "") + seconds(state["oldest_pending_seconds"])
        table.add_row(name, str(state["pending"]), oldest, str(state["max_attempts"]), f"{state['published']:,}")
    if as_json:
        print(json.dumps(states, indent=2))
    else:
        console.print(table)
    raise typer.Exit(1 if troubled else 0)


@outbox_app.command("republish")
def outbox_republish(service: str = typer.Argument(..., help="the service whose events to publish again"),
                     since: datetime = typer.Option(..., "--since", formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
                                                    help="events written at or after this UTC time"),
                     event_type: str = typer.Option(None, "--type", help="only this event type"),
                     yes: bool = typer.Option(False, "--yes", help="really do it")) -> None:
    """Publish a service's events again (the outbox keeps them): after a consumer's database was restored to an
    earlier point, it gets back what it lost. Consumers that already had an event ignore it (by its id)."""
    from sqlalchemy import update

    from credence_common.persistence.db import make_engine

    (name,) = chosen_services(service)
    if not yes:
        console.print("This publishes the events again to every subscriber; add --yes.")
        raise typer.Exit(2)
    engine = make_engine(service_settings(name)["DB_URI"])
    statement = (update(OUTBOX).values(published_at=None)
                 .where(OUTBOX.c.published_at.is_not(None), OUTBOX.c.created_at >= since.replace(tzinfo=UTC)))
    if event_type:
        statement = statement.where(OUTBOX.c.event_type == event_type)
    try:
        with engine.begin() as connection:
            count = connection.execute(statement).rowcount
    finally:
        engine.dispose()
    console.print(f"{count:,} {name} event(s) queued for publishing again; the running relay sends them.")


# --- status --------------------------------------------------------------------------------------------

def broker_state(names) -> dict[str, dict]:
    """Per service: consumers on its RPC queue and messages in its dead-letter queue (passive declares)."""
    import pika

    state = {}
    connection = pika.BlockingConnection(pika_parameters(amqp_uri()))
    try:
        for name in names:
            row = {}
            for key, queue in (("rpc", f"rpc-{name}"), ("dead", dead_letters.dead_letter_queue_name(name))):
                channel = connection.channel()  # a passive declare of a missing queue closes its channel
                try:
                    declared = channel.queue_declare(queue, passive=True).method
                    row[key] = (declared.message_count, declared.consumer_count)
                except pika.exceptions.ChannelClosedByBroker:
                    row[key] = None
                finally:
                    if channel.is_open:
                        channel.close()
            state[name] = row
    finally:
        connection.close()
    return state


def health(name: str) -> str:
    try:
        with RpcClient(amqp_uri(), CORRELATION_ID, timeout=5) as client:
            return client.call(name, "health")["status"]
    except (Unanswered, RemoteRefusal):
        return "unavailable"


@app.command()
def status() -> None:
    """The platform at a glance; exit code 1 when something needs a person."""
    try:
        broker = broker_state(SERVICE_NAMES)
    except Exception as exc:
        console.print(f"[red]the broker cannot be reached: {type(exc).__name__}[/red]")
        raise typer.Exit(3) from None
    table = Table("service", "answers", "rpc consumers", "waiting calls", "outbox pending", "oldest pending",
                  "dead letters")
    attention = False
    for name in SERVICE_NAMES:
        answers = health(name)
        rpc = broker[name].get("rpc")
        dead = broker[name].get("dead")
        try:
            box = outbox_state(name)
            pending, oldest = str(box["pending"]), seconds(box["oldest_pending_seconds"])
            stale = (box["oldest_pending_seconds"] or 0) > 60
        except Exception as exc:
            pending, oldest, stale = f"unreachable: {type(exc).__name__}", "", True
        dead_count = dead[0] if dead else 0
        problem = answers != "ok" or not rpc or rpc[1] == 0 or stale or dead_count > 0
        attention |= problem
        table.add_row(("[red]" if problem else "[green]") + name, answers,
                      str(rpc[1]) if rpc else "no queue", str(rpc[0]) if rpc else "-", pending, oldest,
                      str(dead_count))
    console.print(table)
    console.print("[red]needs attention[/red]" if attention else "[green]all well[/green]")
    raise typer.Exit(1 if attention else 0)


def main() -> None:
    with logs.correlation_scope(CORRELATION_ID):
        app()


if __name__ == "__main__":
    main()
