"""Personal data at rest in a service other than identity: columns sealed with the service's own data keys.

A ``Sealed`` column (``sealed_type(keys)``) reads and writes plaintext in the code and holds a
``credence_common.security.crypto`` token in the database (AES-256-GCM, ``<key_id>$...``), as identity stores its data.
The keys are two settings of the service, ``<SERVICE>_DATA_KEYS`` (``"k2=<new>,k1=<old>"``, every listed key
decrypts) and ``<SERVICE>_DATA_ACTIVE_KEY_ID`` (the one that encrypts). ``key_commands`` gives the service the
operator's ``key-status`` and ``rotate-keys``.

A sealed column cannot be searched or compared in SQL (each encryption has a fresh nonce); keep a blind index
(``credence_common.security.crypto.blind_index``) beside a value that must be looked up.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from nameko.extensions import DependencyProvider
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Text, column, func, or_, select, table, update
from sqlalchemy.types import TypeDecorator

from credence_common.config import assert_safe_for_environment, load_config
from credence_common.security.crypto import KeyRing


class DataKeys:
    """The key ring a service's sealed columns use in this process. One service of a kind runs per process; its
    ``Protection`` dependency installs the ring from the service's config when the container starts. Code that
    opens the database without the service (the command line, a migration, a test) gets the ring the service's
    config file gives in this environment, so it never writes with a key the service does not have."""

    def __init__(self, service: str, config_file: Path):
        self.service = service
        self.config_file = Path(config_file)
        self.keys_setting = f"{service.upper()}_DATA_KEYS"
        self.active_setting = f"{service.upper()}_DATA_ACTIVE_KEY_ID"
        self._keyring: KeyRing | None = None

    def from_config(self, config: dict) -> KeyRing:
        return KeyRing.from_spec(str(config[self.keys_setting]), str(config[self.active_setting]))

    def from_environment(self, environ=None) -> KeyRing:
        """The keys as the service's config file reads them here (from the environment, the development key
        otherwise), refused outside development while they are the development key."""
        config = load_config(self.config_file)
        assert_safe_for_environment(self.service, {self.keys_setting: config[self.keys_setting]}, environ)
        return self.from_config(config)

    def install(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    def reset(self) -> None:
        """Back to the config file's keys on next use (a test that installed others cleans up with this)."""
        self._keyring = None

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            self._keyring = self.from_environment()
        return self._keyring


def sealed_type(keys: DataKeys) -> type[TypeDecorator]:
    """The column type of one service's personal data: Text encrypted with its keys; None stays NULL."""

    class Sealed(TypeDecorator):
        impl = Text
        cache_ok = True
        data_keys = keys

        def process_bind_param(self, value, dialect):
            return None if value is None else self.data_keys.keyring.encrypt(value)

        def process_result_value(self, value, dialect):
            return None if value is None else self.data_keys.keyring.decrypt(value)

    Sealed.__qualname__ = Sealed.__name__ = f"Sealed_{keys.service}"
    return Sealed


class Protection(DependencyProvider):
    """Installs the service's data keys at start-up, so a wrong or missing key stops the service at once
    instead of failing on the first value it reads."""

    def __init__(self, keys: DataKeys):
        self.keys = keys

    def setup(self):
        config = self.container.config
        if self.keys.keys_setting in config:
            self.keys.install(self.keys.from_config(config))
        else:  # a container started from a bare config dict (tests): the config file's keys for this environment
            self.keys.install(self.keys.from_environment())

    def get_dependency(self, worker_ctx):
        return self.keys.keyring


# --- migrations ------------------------------------------------------------------------------------------

def rewrite(connection, table_name: str, key, pairs, change, batch: int = 1000) -> None:
    """For a migration that seals (or unseals) existing rows: copies each ``(source, target)`` column through
    ``change`` (None stays None), ``batch`` rows at a time in key order; ``key`` is a column or a tuple of them."""
    from sqlalchemy import bindparam, tuple_

    keys = (key,) if isinstance(key, str) else tuple(key)
    names = {name for pair in pairs for name in pair} - set(keys)
    rows = table(table_name, *(column(k) for k in keys), *(column(name) for name in names))
    last = None
    while True:
        query = select(rows).order_by(*(rows.c[k] for k in keys)).limit(batch)
        if last is not None:
            query = query.where(tuple_(*(rows.c[k] for k in keys)) > tuple_(*last))
        found = connection.execute(query).mappings().all()
        if not found:
            return
        connection.execute(
            update(rows).where(*(rows.c[k] == bindparam(f"_key_{k}") for k in keys)),
            [{**{f"_key_{k}": row[k] for k in keys},
              **{target: None if row[source] is None else change(row[source]) for source, target in pairs}}
             for row in found])
        last = tuple(found[-1][k] for k in keys)


def key_status_table(usage: dict[str, int], keyring: KeyRing) -> Table:
    """``credence <service> key-status``: how many stored values each key protects, and whether it is the active
    one, another configured one, or MISSING (values no configured key can open)."""
    listing = Table("key id", "values", "state")
    for key_id in sorted(set(usage) | set(keyring.key_ids)):
        state = "active" if key_id == keyring.active_key_id else ("configured" if key_id in keyring.key_ids
                                                                  else "MISSING")
        listing.add_row(key_id, str(usage.get(key_id, 0)), state)
    return listing


# --- rotation --------------------------------------------------------------------------------------------

def sealed_tables(metadata, sealed: type[TypeDecorator]):
    """(table, primary key columns, sealed columns) for every table with a column of type ``sealed``, read from
    the models so that a column sealed later is rotated too. (The answers kept for Idempotency-Key retries are
    not among them: they are encrypted with a key derived from the client's Idempotency-Key, see
    ``credence_common/persistence/idempotency.py``.)"""
    found = []
    for model_table in metadata.sorted_tables:
        columns = tuple(c.name for c in model_table.columns if isinstance(c.type, sealed))
        if columns:
            found.append((model_table.name, tuple(c.name for c in model_table.primary_key.columns), columns))
    return found


def _raw(name: str, keys: tuple[str, ...], columns: tuple[str, ...]):
    # untyped columns: the tokens as stored, not decrypted
    return table(name, *(column(k) for k in keys), *(column(c) for c in columns))


def _stale(rows, columns, active_key_id: str):
    prefix = f"{active_key_id}$"
    return or_(*(func.substr(rows.c[c], 1, len(prefix)) != prefix for c in columns))


def rotate(engine, keyring: KeyRing, tables, batch_size: int = 500, progress: Progress | None = None) -> int:
    """Re-encrypt every value not under the active key. Returns the number of rows rewritten."""
    rewritten = 0
    for name, keys, columns in tables:
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


def key_usage(engine, keyring: KeyRing, tables) -> Counter:
    usage: Counter = Counter()
    with engine.connect() as connection:
        for name, keys, columns in tables:
            rows = _raw(name, keys, columns)
            for c in columns:
                for (token,) in connection.execute(select(rows.c[c]).where(rows.c[c].is_not(None))):
                    usage[keyring.key_id_of(token)] += 1
    return usage


def key_commands(keys: DataKeys, tables_of, help_text: str) -> typer.Typer:
    """``key-status`` and ``rotate-keys`` for one service; ``tables_of()`` gives its sealed tables."""
    from credence_common.persistence.db import make_engine

    app = typer.Typer(help=help_text, no_args_is_help=True, add_completion=False)
    console = Console()

    def keyring_and_engine(config_path: Path):
        config = load_config(config_path)
        return keys.from_config(config), make_engine(config["DB_URI"])

    @app.command("rotate-keys")
    def rotate_keys(config: Path = typer.Option(keys.config_file, help=f"The {keys.service} service's config file"),
                    batch_size: int = typer.Option(500, min=1, max=10_000, help="Rows per transaction")) -> None:
        """Re-encrypt every stored value under the active data key."""
        keyring, engine = keyring_and_engine(config)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        try:
            with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
                rewritten = rotate(engine, keyring, tables_of(), batch_size, progress)
        finally:
            engine.dispose()
        console.print(f"Re-encrypted {rewritten} row(s) under key [bold]{keyring.active_key_id}[/bold].")

    @app.command("key-status")
    def key_status(config: Path = typer.Option(keys.config_file, help=f"The {keys.service} service's config file")
                   ) -> None:
        """How many stored values each data key protects."""
        keyring, engine = keyring_and_engine(config)
        try:
            usage = key_usage(engine, keyring, tables_of())
        finally:
            engine.dispose()
        console.print(key_status_table(usage, keyring))

    return app
