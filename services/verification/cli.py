"""Operator commands for the verification service.

    python -m services.verification.cli rebuild     # replay every certificate event into a fresh read model

The read model is rebuilt inside one transaction from the event log verification keeps
(``received_events``): public checks keep answering from the old copy until the new one commits.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from sqlalchemy.orm import Session

from credence_common.config import load_config
from credence_common.persistence.db import make_engine
from services.verification import usecases

app = typer.Typer(help="Verification service operations.", no_args_is_help=True, add_completion=False)
console = Console()
DEFAULT_CONFIG = Path(__file__).with_name("config.yml")


@app.callback()
def main() -> None:
    """Verification service operations."""


@app.command()
def rebuild(config: Path = typer.Option(DEFAULT_CONFIG, help="The verification service's config file")) -> None:
    """Throw the read model away and replay every certificate event from the start."""
    engine = make_engine(load_config(config)["DB_URI"])
    try:
        with Session(engine) as session, session.begin(), Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=console,
                disable=not console.is_terminal) as progress:
            task = progress.add_task("replaying events", total=None)
            before = len(usecases.read_model_snapshot(session))
            replayed = usecases.rebuild(session, lambda n: progress.update(task, description=f"{n:,} events"))
            after = len(usecases.read_model_snapshot(session))
    finally:
        engine.dispose()
    console.print(f"replayed {replayed:,} events: {after:,} certificates (was {before:,}).")


if __name__ == "__main__":
    app()
