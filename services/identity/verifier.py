"""Identity verification against the public-security ID registry: a sandbox until a provider is chosen."""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from credence_common.errors import InvalidInput


class SandboxIdentityVerifier:
    """Approves every well-formed identity, as the real registry would for a genuine person."""

    def verify(self, full_name: str, resident_id_number: str) -> None:
        return None


class RejectingIdentityVerifier:
    def verify(self, full_name: str, resident_id_number: str) -> None:
        raise InvalidInput("identity_not_verified",
                           "The name and resident ID number do not match the national registry.")


VERIFIERS = {"sandbox": SandboxIdentityVerifier, "reject": RejectingIdentityVerifier}


class IdentityVerifier(DependencyProvider):
    def setup(self):
        kind = self.container.config.get("IDENTITY_VERIFIER", "sandbox")
        if kind not in VERIFIERS:
            raise ValueError(f"IDENTITY_VERIFIER must be one of {sorted(VERIFIERS)}, not {kind!r}")
        self.verifier = VERIFIERS[kind]()

    def get_dependency(self, worker_ctx):
        return self.verifier
