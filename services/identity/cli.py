"""Operator commands for the identity service.

    python -m services.identity.cli key-status            # how many values each data key protects
    python -m services.identity.cli rotate-keys           # re-encrypt everything under the active key

Rotation: put the new key first in IDENTITY_DATA_KEYS ("k2=<new>,k1=<old>"), set
IDENTITY_DATA_ACTIVE_KEY_ID=k2, restart the service (new values use k2, old ones still decrypt), run
``rotate-keys``, then remove k1 from IDENTITY_DATA_KEYS. The command works in batches, commits each,
and can be stopped and rerun at any time: rows already under the active key are skipped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from credence_common.config import load_config
from credence_common.persistence.db import make_engine
from credence_common.persistence.sealed import key_status_table
from credence_common.security.crypto import KeyRing
from services.identity.models import Candidate, PriorEducationCheck, SmsQueue, SmsReceipt

app = typer.Typer(help="Identity service operations.", no_args_is_help=True, add_completion=False)
console = Console()
DEFAULT_CONFIG = Path(__file__).with_name("config.yml")
# Every encrypted column, by table: (model, primary key column, encrypted columns)
ENCRYPTED = (
    (Candidate, Candidate.candidate_id,
     (Candidate.resident_id_encrypted, Candidate.mobile_encrypted, Candidate.email_encrypted)),
    (PriorEducationCheck, PriorEducationCheck.check_id, (PriorEducationCheck.certificate_number_encrypted,)),
    (SmsQueue, SmsQueue.message_id, (SmsQueue.mobile_encrypted, SmsQueue.text_encrypted, SmsQueue.params_encrypted)),
)


def _keyring_and_engine(config_path: Path):
    config = load_config(config_path)
    keyring = KeyRing.from_spec(str(config["IDENTITY_DATA_KEYS"]), str(config["IDENTITY_DATA_ACTIVE_KEY_ID"]))
    return keyring, make_engine(config["DB_URI"])


def _stale(columns, active_key_id: str):
    prefix = f"{active_key_id}$"
    # an emptied value (a sent text's, "" or NULL) holds nothing to re-encrypt: never stale, or it would be
    # selected again in every batch
    return or_(*(and_(column != "", func.substr(column, 1, len(prefix)) != prefix) for column in columns))


def rotate(engine, keyring: KeyRing, batch_size: int = 500, progress: Progress | None = None) -> int:
    """Re-encrypt every value not under the active key. Returns the number of rows rewritten."""
    rewritten = 0
    for model, key_column, columns in ENCRYPTED:
        with Session(engine) as session:
            stale = _stale(columns, keyring.active_key_id)
            total = session.scalar(select(func.count()).select_from(model).where(stale))
        task = progress.add_task(model.__tablename__, total=total) if progress else None
        while True:
            with Session(engine) as session, session.begin():
                rows = session.scalars(select(model).where(_stale(columns, keyring.active_key_id))
                                       .order_by(key_column).limit(batch_size).with_for_update()).all()
                for row in rows:
                    for column in columns:
                        token = getattr(row, column.key)
                        if token and keyring.needs_rotation(token):
                            setattr(row, column.key, keyring.reencrypt(token))
            rewritten += len(rows)
            if progress is not None:
                progress.advance(task, len(rows))
            if len(rows) < batch_size:
                break
    return rewritten


def key_usage(engine, keyring: KeyRing) -> Counter:
    usage: Counter = Counter()
    with Session(engine) as session:
        for _model, _key, columns in ENCRYPTED:
            for column in columns:
                for (token,) in session.execute(select(column).where(column != "")):
                    usage[keyring.key_id_of(token)] += 1
    return usage


@app.command("rotate-keys")
def rotate_keys(config: Path = typer.Option(DEFAULT_CONFIG, help="The identity service's config file"),
                batch_size: int = typer.Option(500, min=1, max=10_000, help="Rows per transaction")) -> None:
    """Re-encrypt every stored value under the active data key."""
    keyring, engine = _keyring_and_engine(config)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            rewritten = rotate(engine, keyring, batch_size, progress)
    finally:
        engine.dispose()
    console.print(f"Re-encrypted {rewritten} row(s) under key [bold]{keyring.active_key_id}[/bold].")


@app.command("key-status")
def key_status(config: Path = typer.Option(DEFAULT_CONFIG, help="The identity service's config file")) -> None:
    """How many stored values each data key protects."""
    keyring, engine = _keyring_and_engine(config)
    try:
        usage = key_usage(engine, keyring)
    finally:
        engine.dispose()
    console.print(key_status_table(usage, keyring))


def sms_status(engine) -> dict:
    """The SMS queue by state and last vendor code, and the receipts by status: counts only, nothing personal."""
    with Session(engine) as session:
        queue = session.execute(select(SmsQueue.state, SmsQueue.last_error, func.count())
                                .group_by(SmsQueue.state, SmsQueue.last_error)).all()
        receipts = session.execute(select(SmsReceipt.status, SmsReceipt.description, func.count())
                                   .group_by(SmsReceipt.status, SmsReceipt.description)).all()
    return {"queue": sorted((state, error or "", count) for state, error, count in queue),
            "receipts": sorted((status, description, count) for status, description, count in receipts)}


@app.command("sms-status")
def sms_status_command(config: Path = typer.Option(DEFAULT_CONFIG, help="The identity service's config file")) -> None:
    """Texts by state (pending, sent, failed, expired) and the vendor's last code, and delivery receipts."""
    engine = make_engine(load_config(config)["DB_URI"])
    try:
        status = sms_status(engine)
    finally:
        engine.dispose()
    for state, error, count in status["queue"]:
        console.print(f"text  {state:<8} {count:>6}  {error}")
    for receipt, description, count in status["receipts"]:
        console.print(f"receipt  {receipt:<10} {count:>6}  {description}")


if __name__ == "__main__":
    app()
