"""Online identity verification (ID card image + liveness/face match) behind an adapter.

The sandbox is deterministic so tests and demos can ask for either verdict: evidence references that
contain ``reject`` fail the face match, ``spoof`` fails the liveness check; anything else passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from credence_common.config import adapter_refusal


@dataclass(frozen=True)
class Verdict:
    approved: bool
    face_match_score: float
    reason: str | None
    verifier: str


class SandboxIdentityVerifier:
    name = "sandbox"

    def verify(self, full_name: str, resident_id_number: str, id_card_image_ref: str, liveness_ref: str) -> Verdict:
        evidence = f"{id_card_image_ref} {liveness_ref}".lower()
        if "spoof" in evidence:
            return Verdict(False, 0.0, "liveness_failed", self.name)
        if "reject" in evidence:
            return Verdict(False, 0.12, "face_mismatch", self.name)
        return Verdict(True, 0.97, None, self.name)


class RejectingIdentityVerifier:
    name = "reject"

    def verify(self, full_name: str, resident_id_number: str, id_card_image_ref: str, liveness_ref: str) -> Verdict:
        return Verdict(False, 0.0, "registry_mismatch", self.name)


VERIFIERS = {"sandbox": SandboxIdentityVerifier, "reject": RejectingIdentityVerifier}


class IdentityVerifier(DependencyProvider):
    def setup(self):
        kind = self.container.config.get("IDENTITY_VERIFIER", "sandbox")
        if kind not in VERIFIERS:
            raise ValueError(f"IDENTITY_VERIFIER must be one of {sorted(VERIFIERS)}, not {kind!r}")
        refusal = adapter_refusal("IDENTITY_VERIFIER", kind)  # the sandbox would confirm anyone as anyone
        if refusal:
            raise ValueError(refusal)
        self.verifier = VERIFIERS[kind]()

    def get_dependency(self, worker_ctx):
        return self.verifier
