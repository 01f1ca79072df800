"""Read-only access to the container's config from a worker."""

from __future__ import annotations

from nameko.extensions import DependencyProvider


class Settings(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return self.container.config
