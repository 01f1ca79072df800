"""``make run-emulated``: the platform with its real provider adapters (WeChat Pay, Tencent Cloud FaceID and SMS,
the degree registry's HTTP contract) talking to local emulators of those providers, instead of the sandboxes.

It is ``make run`` (development rules, SQLite, the local RabbitMQ) with the adapters production runs, so that a
developer can click through what a candidate meets in production: a code texted through Tencent Cloud SMS (the
emulator plays the candidate's phone and prints what arrives), a FaceID liveness page, a WeChat Pay order paid
from the emulator's payer route, a degree looked up over the signed contract. Development rules because two
things cannot be had on a laptop: WeChat Pay notifies only an https:// address, and a local gateway has no
certificate; staging would refuse it (services/payments/adapters/configuration.py). The same adapters under production
rules, against the same emulators over HTTPS, are what tests/security/test_production_overlay.py runs.

Its databases are var/emulated/*.sqlite, apart from ``make run``'s."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from credence_common.security.masking import mask_mobile
from deploy import platform
from services.identity.adapters.degree_registry_emulator import DegreeRegistryEmulator, write_credence_keys
from services.identity.adapters.faceid_emulator import FaceIdEmulator
from services.identity.adapters.sms_emulator import TencentSmsEmulator, new_secret_pair, write_secrets
from services.payments.adapters.wechatpay_emulator import EmulatorKeys, WeChatPayEmulator

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKDIR = REPO_ROOT / "var" / "emulated"
# EMULATED_PORT_BASE moves them all; 0: each on any free port (the banner names them)
PORTS = {"wechatpay": 8765, "faceid": 8766, "sms": 8767, "registry": 8768}
SMS_APP_ID, SIGN_NAME, FACEID_RULE_ID = "1400006666", "Credence", "1"
TEMPLATES = {"registration": "100001", "password_reset": "100002", "ticket_lookup": "100003", "sign_in": "100004"}
MERCHANT, APPID = "1900000001", "wxd678efh567hg6787"
SERVICES = ("identity", "scoring", "certificates", "payments", "verification")


def ports(environ=os.environ) -> dict[str, int]:
    base = int(environ.get("EMULATED_PORT_BASE", PORTS["wechatpay"]))
    return {name: base + offset if base else 0 for offset, name in enumerate(PORTS)}


class Emulators:
    """The four providers' emulators, started on fixed local ports, with our side's keys written under workdir."""

    def __init__(self, workdir: Path, port_of: dict[str, int]):
        keys = workdir / "keys"
        self.wechatpay_keys = EmulatorKeys()
        self.wechatpay_keys.write(keys / "wechatpay")
        self.wechatpay = WeChatPayEmulator(self.wechatpay_keys, MERCHANT, port=port_of["wechatpay"])
        self.faceid = FaceIdEmulator(rule_id=FACEID_RULE_ID, port=port_of["faceid"])
        self.faceid.write_secrets(keys / "faceid")
        secret_id, secret_key = new_secret_pair()
        write_secrets(keys / "tencent-sms", secret_id, secret_key)
        self.sms = TencentSmsEmulator({secret_id: secret_key}, SMS_APP_ID, (SIGN_NAME,),
                                      {template: 2 for template in TEMPLATES.values()}, port=port_of["sms"])
        signing_key = ed25519.Ed25519PrivateKey.generate()
        self.registry = DegreeRegistryEmulator({"c1": signing_key.public_key()}, port=port_of["registry"])
        write_credence_keys(keys / "degree-registry", {"c1": signing_key},
                            {self.registry.registry_key_id: self.registry.registry_key}, active_key_id="c1")
        self.keys = keys
        self._stopping = threading.Event()

    def settings(self, gateway_url: str) -> dict[str, str]:
        """What the platform's processes are given: the real adapters, pointed at the emulators."""
        return {
            "PAYMENT_PROVIDER": "wechatpay",
            "WECHATPAY_SECRETS_DIR": str(self.keys / "wechatpay"),
            "WECHATPAY_API_BASE": self.wechatpay.base_url,
            "WECHATPAY_MCHID": MERCHANT,
            "WECHATPAY_APPID": APPID,
            "WECHATPAY_NOTIFY_URL": gateway_url + "/api/v1/payments/notifications/wechatpay",
            "IDENTITY_VERIFIER": "tencent_faceid",
            "FACEID_SECRETS_DIR": str(self.keys / "faceid"),
            "FACEID_ENDPOINT": self.faceid.base_url,
            "FACEID_RULE_ID": FACEID_RULE_ID,
            # there is no candidates' front end here: the page shows the token to confirm the session with
            "FACEID_REDIRECT_URL": gateway_url + "/candidate/identity-confirmation",
            "SMS_ADAPTER": "tencent_sms",
            "SMS_TENCENT_SECRETS_DIR": str(self.keys / "tencent-sms"),
            "SMS_TENCENT_ENDPOINT": self.sms.endpoint,
            "SMS_TENCENT_SDK_APP_ID": SMS_APP_ID,
            "SMS_TENCENT_SIGN_NAME": SIGN_NAME,
            "SMS_TENCENT_TEMPLATES": ",".join(f"{purpose}={template}" for purpose, template in TEMPLATES.items()),
            "DEGREE_REGISTRY": "http",
            "DEGREE_REGISTRY_URL": self.registry.base_url,
            "DEGREE_REGISTRY_SECRETS_DIR": str(self.keys / "degree-registry"),
        }

    def start(self) -> None:
        for emulator in (self.wechatpay, self.faceid, self.sms, self.registry):
            emulator.start()
        threading.Thread(target=self._print_texts, name="emulated-phone", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        for emulator in (self.wechatpay, self.faceid, self.sms, self.registry):
            emulator.stop()

    def _print_texts(self) -> None:
        """The candidate's phone: each text the SMS emulator accepts, as the candidate would read it."""
        shown = 0
        purposes = {template: purpose for purpose, template in TEMPLATES.items()}
        while not self._stopping.wait(0.5):
            with self.sms.lock:
                new = self.sms.sent[shown:]
            for text in new:
                print(f"[phone {mask_mobile(text.phone.removeprefix('+86'))}] {text.sign_name}: "
                      f"{purposes.get(text.template_id, text.template_id)} code {text.params[0]} "
                      f"(valid {text.params[1]} minutes)", flush=True)
            shown += len(new)

    def banner(self, gateway_url: str) -> str:
        return (
            "Emulated providers (the real adapters talk to these):\n"
            f"  WeChat Pay:     {self.wechatpay.base_url}  pay an order: "
            f"curl -X POST {self.wechatpay.base_url}/emulator/trades/<order_number>/payment\n"
            f"  FaceID:         {self.faceid.base_url}  the liveness page is the url a session answers\n"
            f"  Tencent SMS:    {self.sms.endpoint}  texts are printed here as [phone ...]\n"
            f"  Degree registry: {self.registry.base_url}  knows no degree: a look-up asks for a proof\n")


def main() -> int:
    workdir = Path(os.environ.get("EMULATED_WORKDIR") or WORKDIR)
    workdir.mkdir(parents=True, exist_ok=True)
    emulators = Emulators(workdir, ports())
    gateway_url = "http://" + os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")
    os.environ.setdefault("CREDENCE_ENV", "development")
    for name, value in emulators.settings(gateway_url).items():
        os.environ.setdefault(name, value)
    for service in SERVICES:
        os.environ.setdefault(f"{service.upper()}_DB_URI", f"sqlite:///{workdir / service}.sqlite")
    emulators.start()
    print(emulators.banner(gateway_url), flush=True)
    try:
        return platform.main()
    finally:
        emulators.stop()


if __name__ == "__main__":
    raise SystemExit(main())
