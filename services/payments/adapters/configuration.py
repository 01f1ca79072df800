"""The payment provider and rules a config file describes: shared by the service and its operator CLI."""

from __future__ import annotations

from dataclasses import dataclass

from credence_common import calendar
from credence_common.config import adapter_refusal, is_development, is_production
from services.payments import domain
from services.payments.adapters.sandbox import SandboxProvider
from services.payments.adapters.sandbox_bank import SandboxBank, sandbox_db_uri
from services.payments.adapters.wechatpay import DEFAULT_API_BASE, KeyStore, WeChatPayProvider
from services.payments.usecases import PaymentRules


@dataclass
class ConfiguredPayments:
    provider: SandboxProvider | WeChatPayProvider
    bank: SandboxBank | None
    rules: PaymentRules

    def close(self) -> None:
        if self.bank is not None:
            self.bank.close_engine()


PROVIDERS = ("sandbox", "wechatpay")


def payment_rules(config: dict) -> PaymentRules:
    return PaymentRules(order_ttl_seconds=int(config.get("PAYMENT_ORDER_TTL_SECONDS", 1800)),
                        refund_promise_working_days=int(config.get("REFUND_PROMISE_WORKING_DAYS",
                                                                   domain.REFUND_PROMISE_WORKING_DAYS)),
                        holidays=calendar.configured_holidays(config, "payments"),
                        refund_check_first_seconds=float(config.get("REFUND_CHECK_FIRST_SECONDS", 5)),
                        refund_check_max_seconds=float(config.get("REFUND_CHECK_MAX_SECONDS", 3600)))


def wechatpay_provider(config: dict) -> WeChatPayProvider:
    """WeChat Pay API v3. Its keys are files in WECHATPAY_SECRETS_DIR (a mounted secret: docs/operations.md,
    "WeChat Pay"), reread when they change, so a rotation needs no restart."""
    secrets_dir = str(config.get("WECHATPAY_SECRETS_DIR") or "")
    if not secrets_dir:
        raise ValueError("PAYMENT_PROVIDER=wechatpay needs WECHATPAY_SECRETS_DIR (the merchant key, its serial, "
                         "the APIv3 key and the platform keys)")
    api_base = str(config.get("WECHATPAY_API_BASE") or DEFAULT_API_BASE)
    notify_url = str(config.get("WECHATPAY_NOTIFY_URL") or "")
    appid = str(config.get("WECHATPAY_APPID") or "")
    if not notify_url.startswith("https://") and not is_development():
        raise ValueError("WECHATPAY_NOTIFY_URL must be our https:// notification route "
                         "(…/api/v1/payments/notifications/wechatpay)")
    if not appid:
        raise ValueError("PAYMENT_PROVIDER=wechatpay needs WECHATPAY_APPID (the 公众号 / 小程序 AppID)")
    if not api_base.startswith("https://") and is_production():
        raise ValueError("WECHATPAY_API_BASE must be https:// in production (an emulator is for tests and staging)")
    keys = KeyStore(secrets_dir, float(config.get("WECHATPAY_KEY_CHECK_SECONDS", 5)),
                    str(config.get("WECHATPAY_PLATFORM_KEYS_DIR") or "") or None)
    return WeChatPayProvider(
        keys, str(config.get("WECHATPAY_MCHID") or config.get("PAYMENT_MERCHANT_ID", "1900000001")), appid,
        notify_url, api_base, float(config.get("WECHATPAY_TIMEOUT_SECONDS", 10)),
        int(config.get("PAYMENT_NOTIFY_TOLERANCE_SECONDS", 300)))


def configured_payments(config: dict) -> ConfiguredPayments:
    kind = config.get("PAYMENT_PROVIDER", "sandbox")
    if kind not in PROVIDERS:
        raise ValueError(f"PAYMENT_PROVIDER={kind!r}: one of {', '.join(PROVIDERS)}")
    if kind == "wechatpay":
        return ConfiguredPayments(wechatpay_provider(config), None, payment_rules(config))
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
    return ConfiguredPayments(provider, bank, payment_rules(config))
