"""What the operator sees: structured logs with correlation ids, Prometheus metrics and probes, garbage-collector
tuning."""
