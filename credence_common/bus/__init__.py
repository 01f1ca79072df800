"""RabbitMQ: nameko entrypoints with Credence's conventions, the outbox relay, reliable event handlers (retries,
dead letters), queue declaration and administration, RPC with a deadline."""
