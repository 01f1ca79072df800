"""The identity service's nameko DependencyProviders: configuration in, adapters and sessions out.

``IdentityDatabase`` (the unit of work, which knows ``CommitThenRefuse``), ``Protection`` (the data keys),
``IdentityVerifier`` (``IDENTITY_VERIFIER``) and ``DegreeRegistry`` (``DEGREE_REGISTRY``)."""

from __future__ import annotations

import contextlib
import logging

from nameko.extensions import DependencyProvider

from credence_common.config import adapter_refusal, is_production
from credence_common.crypto import KeyRing
from credence_common.db import Database, UnitOfWork
from services.identity.adapters.degree_registry import REGISTRIES, SandboxDegreeRegistry, http_registry
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.adapters.verifier import VERIFIERS
from services.identity.usecases import CommitThenRefuse

log = logging.getLogger(__name__)


class IdentityUnitOfWork(UnitOfWork):
    """The platform's unit of work, plus identity's one exception to "a refusal rolls everything back".

    Some refusals must keep what the call wrote, or the guessing limits would count nothing: a failed sign-in
    is counted (and locks the name at the limit), a wrong one-time code burns a try, a used-up code stays used
    up, a replayed refresh token has ended every session, a refused registry check stays booked against the
    day's limit. The use case raises ``CommitThenRefuse(refusal)``; here the transaction commits as if the call
    had succeeded, and then the refusal is raised, as any other refusal is."""

    @contextlib.contextmanager
    def transaction(self):
        refusal = None
        with super().transaction() as session:
            try:
                yield session
            except CommitThenRefuse as kept:
                refusal = kept.refusal
        if refusal is not None:
            raise refusal


class IdentityDatabase(Database):
    """``Database`` whose unit of work knows ``CommitThenRefuse``."""

    def get_dependency(self, worker_ctx):
        unit = super().get_dependency(worker_ctx)  # the platform's choices: the Idempotency-Key, the pools
        return IdentityUnitOfWork(self.engine, self.commit_signal, unit.idempotent_call, self.idempotency_ttl,
                                  self.autocommit_engine)


class Protection(DependencyProvider):
    def setup(self):
        config = self.container.config
        keyring = KeyRing.from_spec(str(config["IDENTITY_DATA_KEYS"]), str(config["IDENTITY_DATA_ACTIVE_KEY_ID"]))
        self.protection = PersonalDataProtection(keyring, str(config["IDENTITY_INDEX_KEY"]))

    def get_dependency(self, worker_ctx):
        return self.protection


class IdentityVerifier(DependencyProvider):
    def setup(self):
        kind = self.container.config.get("IDENTITY_VERIFIER", "sandbox")
        if kind not in VERIFIERS:
            raise ValueError(f"IDENTITY_VERIFIER must be one of {sorted(VERIFIERS)}, not {kind!r}")
        refusal = adapter_refusal("IDENTITY_VERIFIER", kind)  # the sandbox would confirm anyone as anyone
        if refusal:
            raise ValueError(refusal)
        self.verifier = VERIFIERS[kind](self.container.config)

    def get_dependency(self, worker_ctx):
        return self.verifier


class DegreeRegistry(DependencyProvider):
    def setup(self):
        config = self.container.config
        kind = config.get("DEGREE_REGISTRY", "sandbox")
        if kind not in REGISTRIES:
            raise ValueError(f"DEGREE_REGISTRY must be one of {', '.join(REGISTRIES)}, not {kind!r}")
        if kind == "http":  # a real registry: allowed everywhere, but production insists on https
            self.registry = http_registry(config, is_production())
            return
        refusal = adapter_refusal("DEGREE_REGISTRY", kind)  # the sandbox accepts made-up degrees
        if refusal:
            raise ValueError(refusal)
        self.registry = SandboxDegreeRegistry()

    def get_dependency(self, worker_ctx):
        return self.registry
