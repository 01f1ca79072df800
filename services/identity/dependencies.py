"""The identity service's nameko DependencyProviders: configuration in, rules, adapters and sessions out."""

from __future__ import annotations

import contextlib

from credence_common.db import Database, UnitOfWork
from services.identity.usecases import CommitThenRefuse


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
