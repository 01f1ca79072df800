"""A service whose only work is to take a while, for the shutdown tests: run by credence_common.runtime.runner like
every Credence service, so what is tested is the runner's shutdown, which all of them share."""

from __future__ import annotations

from pathlib import Path

import eventlet
from nameko.rpc import rpc


class ShutdownProbe:
    name = "shutdown_probe"

    @rpc
    def work(self, seconds: float, started_marker: str | None = None) -> str:
        if started_marker:
            Path(started_marker).write_text("started")
        eventlet.sleep(seconds)
        return "done"
