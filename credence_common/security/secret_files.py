"""Secrets kept in files (a mounted Kubernetes Secret, a directory of vendor keys) and reread when one of the files
changes, so that rotating a key needs no restart. One watcher for every store of the platform: identity's
Tencent Cloud SMS and FaceID keys and its degree-registry keys, payments' WeChat Pay keys.

The rules, written once:
- a change is seen by a file's identity, time and size, after resolving symlinks: a Kubernetes Secret volume
  swaps a symlinked directory, so a file's path stays while the file behind it is another one;
- the files are looked at no more often than every ``check_interval_seconds`` (a request path calls ``current``);
- a broken update (a half-written file, a key that does not parse: the loader raises ``ValueError``; a file
  gone in the middle of a swap: ``OSError``) keeps the last good secrets and is logged; a broken directory at
  start-up raises, so the start stops;
- a reload is logged with what it loaded, described by the caller (never the secret itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Secrets = TypeVar("Secrets")
Stamp = tuple[tuple[str, int | None, int | None, int | None], ...]


def stamp_of(paths: Iterable[Path]) -> Stamp:
    """What says that a file changed: (path, inode, mtime in ns, size) of the file behind each path."""
    stamp: list[tuple[str, int | None, int | None, int | None]] = []
    for path in paths:
        try:
            info = path.resolve().stat()
            stamp.append((str(path), info.st_ino, info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append((str(path), None, None, None))
    return tuple(stamp)


class ReloadingSecrets(Generic[Secrets]):
    """``load()``'s result, loaded again when a file of ``files()`` changed (``files`` is called each time: a new
    key file dropped beside the old ones counts)."""

    def __init__(self, what: str, files: Callable[[], Iterable[Path]], load: Callable[[], Secrets],
                 describe: Callable[[Secrets], str], check_interval_seconds: float = 5.0):
        self.what = what
        self.files = files
        self.load = load
        self.describe = describe
        self.check_interval_seconds = check_interval_seconds
        self._lock = threading.Lock()
        self._stamp = stamp_of(files())  # before the load: a change during it is seen at the next check
        self._secrets = load()  # a broken directory at start-up stops the start
        self._checked = time.monotonic()

    def current(self, force: bool = False) -> Secrets:
        """The secrets, reread first if a file changed since the last look (``force``: look now, whatever the
        interval, e.g. for a key id not known yet after a rotation)."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_interval_seconds:
            return self._secrets
        with self._lock:
            self._checked = now
            stamp = stamp_of(self.files())
            if stamp != self._stamp:
                try:
                    self._secrets = self.load()
                    log.info("%s reloaded: %s", self.what, self.describe(self._secrets))
                except (ValueError, OSError) as error:  # OSError: a file gone in the middle of a swap
                    log.error("%s not reloaded, the last good ones stay: %s", self.what, error)
                self._stamp = stamp
            return self._secrets
