"""A service's own database: engine and unit of work, migrations, the outbox and inbox tables, idempotency records,
sequences, sealed columns, shared column types."""
