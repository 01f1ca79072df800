"""The payment provider and rules a config file describes: shared by the service and its operator CLI."""

from __future__ import annotations

from dataclasses import dataclass

from credence_common.config import adapter_refusal
from services.payments import domain
from services.payments.providers import SandboxBank, SandboxProvider, sandbox_db_uri
from services.payments.usecases import PaymentRules


@dataclass
class ConfiguredPayments:
    provider: SandboxProvider
    bank: SandboxBank | None
    rules: PaymentRules

    def close(self) -> None:
        if self.bank is not None:
            self.bank.close_engine()


def configured_payments(config: dict) -> ConfiguredPayments:
    kind = config.get("PAYMENT_PROVIDER", "sandbox")
    if kind != "sandbox":
        raise ValueError(f"PAYMENT_PROVIDER={kind!r}: only 'sandbox' exists so far")
    refusal = adapter_refusal("PAYMENT_PROVIDER", kind)  # in production it would hand out free certificates
    if refusal:
        raise ValueError(refusal)
    private_key = domain.load_private_key(str(config["PAYMENT_SANDBOX_SIGNING_KEY"]))
    public_pem = str(config.get("PAYMENT_PROVIDER_PUBLIC_PEM") or "") or domain.public_key_pem(private_key)
    bank = SandboxBank(sandbox_db_uri(config.get("PAYMENT_SANDBOX_DB_URI"), config["DB_URI"]), private_key)
    provider = SandboxProvider(
        bank, domain.load_public_key(public_pem), str(config.get("PAYMENT_MERCHANT_ID", "1900000001")),
        str(config.get("PAYMENT_SANDBOX_PAY_URL", "/api/v1/sandbox-provider/orders")),
        int(config.get("PAYMENT_NOTIFY_TOLERANCE_SECONDS", 300)))
    rules = PaymentRules(order_ttl_seconds=int(config.get("PAYMENT_ORDER_TTL_SECONDS", 1800)),
                         refund_promise_working_days=int(config.get("REFUND_PROMISE_WORKING_DAYS", 3)),
                         holidays=domain.parse_holidays(config.get("PAYMENT_HOLIDAYS", "")))
    return ConfiguredPayments(provider, bank, rules)
