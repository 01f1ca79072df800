"""The gateway's routes, one module per service they forward to (gateway/api.py assembles them)."""
