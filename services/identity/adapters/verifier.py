"""Online identity verification (ID card image + liveness/face match) behind an adapter.

``tencent_faceid`` (services/identity/adapters/faceid.py) is the real one: it checks the name and ID number against
the national registry and runs a liveness session at Tencent Cloud FaceID (services/identity/usecases/liveness.py), so
it has no ``verify`` with evidence references but ``supports_sessions``.

The sandbox is deterministic so tests and demos can ask for either verdict: evidence references that
contain ``reject`` fail the face match, ``spoof`` fails the liveness check; anything else passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from credence_common.config import is_production
from services.identity.adapters import faceid


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


def _tencent_faceid(config: dict):
    return faceid.from_config(config, production=is_production())


VERIFIERS = {"sandbox": lambda _config: SandboxIdentityVerifier(),
             "reject": lambda _config: RejectingIdentityVerifier(),
             "tencent_faceid": _tencent_faceid}
