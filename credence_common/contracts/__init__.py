"""What crosses the bus, and so what every service and the gateway agree on: the RPC and HTTP models (one module per
service), the event payloads (events.py) with their envelope (envelope.py) and subscriptions (topology.py), the
typed refusals (errors.py), validation at the edge (validation.py), the correlation id (correlation.py), and the
formats of the public numbers (tickets.py, certificate_numbers.py) and staff roles (staff_roles.py)."""
