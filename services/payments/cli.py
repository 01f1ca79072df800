"""Operator commands for the payments service; they read the service's own database and ask its provider.

    python -m services.payments.cli reconcile 2026-11-23     # exit code 1 when anything does not match
    python -m services.payments.cli refunds --overdue        # refunds past their promised_by day
    python -m services.payments.cli incidents --flagged      # refused payments a person must look at
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from credence_common.calendar import business_day
from credence_common.config import load_config
from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from services.payments import usecases
from services.payments.adapters.configuration import configured_payments

app = typer.Typer(help="Payments service operations.", no_args_is_help=True, add_completion=False)
console = Console()
DEFAULT_CONFIG = Path(__file__).with_name("config.yml")


def yuan(fen: int | None) -> str:
    return "" if fen is None else f"{fen // 100}.{fen % 100:02d}"


@app.command()
def reconcile(day: str = typer.Argument(None, help="Beijing business day, YYYY-MM-DD (default: yesterday)"),
              as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
              config: Path = typer.Option(DEFAULT_CONFIG, help="The payments service's config file")) -> None:
    """Compare the provider's daily statement with our ledger and list every mismatch."""
    try:
        wanted = date.fromisoformat(day) if day else business_day(utcnow()) - timedelta(days=1)
    except ValueError:
        console.print(f"[red]{day!r} is not a date like 2026-11-23[/red]")
        raise typer.Exit(2) from None
    settings = load_config(config)
    payments = configured_payments(settings)
    engine = make_engine(settings["DB_URI"])
    try:
        with Session(engine) as session:
            report = usecases.reconcile(session, payments.provider, wanted)
    finally:
        engine.dispose()
        payments.close()
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        console.print(f"{report.day} ({report.provider}): {report.payments_matched} payments and "
                      f"{report.refunds_matched} refunds match; net ¥{yuan(report.credence_total_fen)} here, "
                      f"¥{yuan(report.provider_total_fen)} at the provider.")
        if report.mismatches:
            table = Table("kind", "entry", "reference", "order", "ours (¥)", "provider (¥)")
            for m in report.mismatches:
                table.add_row(m.kind, m.entry, m.reference, m.order_number, yuan(m.credence_amount_fen),
                              yuan(m.provider_amount_fen))
            console.print(table)
        else:
            console.print("[green]No mismatches.[/green]")
    raise typer.Exit(1 if report.mismatches else 0)


@app.command()
def refunds(overdue: bool = typer.Option(False, "--overdue", help="Only refunds past their promised date"),
            config: Path = typer.Option(DEFAULT_CONFIG, help="The payments service's config file")) -> None:
    """Refunds with their promised date."""
    engine = make_engine(load_config(config)["DB_URI"])
    try:
        with Session(engine) as session:
            found = usecases.refunds(session, overdue).refunds
    finally:
        engine.dispose()
    table = Table("refund", "order", "¥", "status", "promised by", "attempts", "last error")
    for r in found:
        table.add_row(r.refund_number, r.order_number, yuan(r.amount_fen),
                      f"[red]{r.status} (overdue)[/red]" if r.overdue else r.status, r.promised_by.isoformat(),
                      str(r.attempts), r.last_error or "")
    console.print(table if found else "No refunds.")


@app.command()
def incidents(flagged: bool = typer.Option(False, "--flagged", help="Only those where money may sit at the "
                                                                     "provider"),
              config: Path = typer.Option(DEFAULT_CONFIG, help="The payments service's config file")) -> None:
    """Refused notifications and requests, newest first."""
    engine = make_engine(load_config(config)["DB_URI"])
    try:
        with Session(engine) as session:
            found = usecases.incidents(session, flagged).incidents
    finally:
        engine.dispose()
    table = Table("when", "code", "order", "transaction", "by", "flagged")
    for i in found:
        table.add_row(f"{i.occurred_at:%Y-%m-%d %H:%M:%S}", i.code, i.order_number or "",
                      i.provider_transaction_id or "", i.actor, "yes" if i.flagged else "")
    console.print(table if found else "No incidents.")


if __name__ == "__main__":
    app()
