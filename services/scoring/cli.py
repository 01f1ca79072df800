"""Operator commands for the scoring service.

    python -m services.scoring.cli import-results results.csv            # CSV or JSON Lines (.jsonl)

Streams the file (memory does not grow with it), shows progress, and imports all rows or none.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from credence_common.config import load_config
from credence_common.contracts.errors import InvalidInput
from credence_common.persistence.db import make_engine
from services.scoring.usecases.imports import run_import

app = typer.Typer(help="Scoring service operations.", no_args_is_help=True, add_completion=False)
console = Console()


@app.callback()
def main() -> None:
    """Scoring service operations (a callback keeps sub-command names even with a single command)."""
DEFAULT_CONFIG = Path(__file__).with_name("config.yml")


@app.command("import-results")
def import_results(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSON Lines file"),
                   file_format: str = typer.Option(None, "--format", help="csv or jsonl (default: by extension)"),
                   actor: str = typer.Option(..., "--actor", "--staff", help="The staff username importing: "
                                             "recorded as staff:NAME, so that account may not sign these results "
                                             "off (separation of duties)"),
                   config: Path = typer.Option(DEFAULT_CONFIG, help="The scoring service's config file")) -> None:
    """Import exam results from an exam centre's file."""
    file_format = file_format or ("jsonl" if file.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    engine = make_engine(load_config(config)["DB_URI"])
    columns = (TextColumn("rows read"), BarColumn(), MofNCompleteColumn())
    try:
        with file.open("rb") as stream, Progress(*columns, console=console,
                                                  disable=not console.is_terminal) as progress:
            task = progress.add_task("import", total=None)
            report = run_import(engine, stream, file_format, f"staff:{actor}",
                                on_rows=lambda n: progress.update(task, completed=n))
    except InvalidInput as refused:
        console.print(f"[red]{refused.message}[/red]")
        for detail in refused.details[:20]:
            console.print(f"  {detail['field']}: {detail['message']}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(f"{report.status}: {report.row_count} rows, {report.recorded} recorded, "
                  f"{report.unchanged} unchanged (batch {report.batch_id}).")


if __name__ == "__main__":
    app()
