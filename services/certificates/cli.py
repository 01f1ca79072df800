"""Operator commands for the certificates service's data keys (``credence certificates ...``).

    credence certificates key-status      # how many stored values each data key protects
    credence certificates rotate-keys     # re-encrypt everything under the active key

Rotation: put the new key first in CERTIFICATES_DATA_KEYS ("k2=<new>,k1=<old>"), set
CERTIFICATES_DATA_ACTIVE_KEY_ID=k2, restart certificates (new values use k2, old ones still decrypt), run
``rotate-keys``, check ``key-status`` shows nothing under k1, then remove k1. The command works in batches,
commits each, and can be stopped and rerun at any time: rows already under the active key are skipped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import column, func, or_, select, table, update

from credence_common.config import load_config
from credence_common.crypto import KeyRing
from credence_common.db import make_engine
from services.certificates.models import Base
from services.certificates.protection import CONFIG_FILE, Sealed, keyring_from_config

app = typer.Typer(help="The keys that protect personal data in certificates.", no_args_is_help=True,
                  add_completion=False)
console = Console()


def sealed_tables() -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(table, primary key columns, sealed columns) for every table with a Sealed column, read from the models so
    that a column sealed later is rotated too, and the Idempotency-Key answers (sealed by the service's Database)."""
    found = []
    for model_table in Base.metadata.sorted_tables:
        sealed = tuple(c.name for c in model_table.columns if isinstance(c.type, Sealed))
        if sealed:
            found.append((model_table.name, tuple(c.name for c in model_table.primary_key.columns), sealed))
    return found + [("idempotency_records", ("record_key", "target"), ("answer_json",))]


def _raw(name: str, keys: tuple[str, ...], columns: tuple[str, ...]):
    # untyped columns: the tokens as stored, not decrypted by Sealed
    return table(name, *(column(k) for k in keys), *(column(c) for c in columns))


def _stale(rows, columns, active_key_id: str):
    prefix = f"{active_key_id}$"
    return or_(*(func.substr(rows.c[c], 1, len(prefix)) != prefix for c in columns))


def rotate(engine, keyring: KeyRing, batch_size: int = 500, progress: Progress | None = None) -> int:
    """Re-encrypt every value not under the active key. Returns the number of rows rewritten."""
    rewritten = 0
    for name, keys, columns in sealed_tables():
        rows = _raw(name, keys, columns)
        stale = _stale(rows, columns, keyring.active_key_id)
        with engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(rows).where(stale))
        task = progress.add_task(name, total=total) if progress else None
        while True:
            with engine.begin() as connection:
                found = connection.execute(select(rows).where(stale).order_by(*(rows.c[k] for k in keys))
                                           .limit(batch_size).with_for_update()).mappings().all()
                for row in found:
                    changes = {c: keyring.reencrypt(row[c]) for c in columns
                               if row[c] is not None and keyring.needs_rotation(row[c])}
                    connection.execute(update(rows).where(*(rows.c[k] == row[k] for k in keys)).values(**changes))
            rewritten += len(found)
            if progress is not None:
                progress.advance(task, len(found))
            if len(found) < batch_size:
                break
    return rewritten


def key_usage(engine, keyring: KeyRing) -> Counter:
    usage: Counter = Counter()
    with engine.connect() as connection:
        for name, keys, columns in sealed_tables():
            rows = _raw(name, keys, columns)
            for c in columns:
                for (token,) in connection.execute(select(rows.c[c]).where(rows.c[c].is_not(None))):
                    usage[keyring.key_id_of(token)] += 1
    return usage


def _keyring_and_engine(config_path: Path):
    config = load_config(config_path)
    return keyring_from_config(config), make_engine(config["DB_URI"])


@app.command("rotate-keys")
def rotate_keys(config: Path = typer.Option(CONFIG_FILE, help="The certificates service's config file"),
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
def key_status(config: Path = typer.Option(CONFIG_FILE, help="The certificates service's config file")) -> None:
    """How many stored values each data key protects."""
    keyring, engine = _keyring_and_engine(config)
    try:
        usage = key_usage(engine, keyring)
    finally:
        engine.dispose()
    table_ = Table("key id", "values", "state")
    for key_id in sorted(set(usage) | set(keyring.key_ids)):
        state = "active" if key_id == keyring.active_key_id else ("configured" if key_id in keyring.key_ids
                                                                  else "MISSING")
        table_.add_row(key_id, str(usage.get(key_id, 0)), state)
    console.print(table_)


if __name__ == "__main__":
    app()
