"""A PostgreSQL primary and a streaming standby of the fault suite's own, and the failover it strikes during the
journeys (``python -m tests.faults.suite --backend postgresql --standby``).

Both servers run from the machine's PostgreSQL binaries (``POSTGRES_BIN``, else ``pg_config --bindir``, else the
newest ``/usr/lib/postgresql/*/bin``), in a temporary directory, on free ports of loopback; the shared server on
5432 is never touched. PostgreSQL refuses to run as root: when the suite runs as root they run as the ``postgres``
OS user, their directory owned by it.

- The primary: ``initdb`` (trust for 127.0.0.1, replication included: initdb's default ``pg_hba.conf``),
  ``wal_level=replica``.
- The standby: ``pg_basebackup -R -X stream`` from the primary (``-R`` writes ``primary_conninfo`` and
  ``standby.signal``), started on another port. Once it streams, the primary is given
  ``synchronous_standby_names = '*'``: a commit the primary acknowledges has been flushed on the standby too
  (``synchronous_commit = on``, the default). With asynchronous replication a failover can lose the last commits a
  client was told had succeeded; the suite would rightly count those as lost.
- The services get one URI naming both servers: ``?host=127.0.0.1:P1&host=127.0.0.1:P2&target_session_attrs=
  read-write`` (SQLAlchemy's psycopg2 dialect turns it into libpq's ``host=h1,h2 port=p1,p2``): libpq tries the
  hosts in turn and keeps the one that accepts writes, so after a promotion every new connection reaches the new
  primary, with no proxy nor DNS change (``service_uri``). The suite reads its counts through the same kind of
  URI, so it reads whichever server is the primary.

The fault (``fail_over``): timed for a service's COMMIT waiting for the standby's confirmation, every process of
the primary is SIGKILLed (its postmaster and its backends, all stopped first: the server crashes, no client is
told anything, their connections are reset), the standby is promoted (``pg_promote()``), and the suite measures
how long until the new primary accepts writes; ``CallerView`` records what the journeys' callers saw. Then
(``rebuild_standby``, still under load) a new standby is made from the new primary, on the crashed primary's port
(the old data directory is thrown away: a crashed primary may hold WAL its standby never confirmed, and would need
``pg_rewind`` to follow), and synchronous replication is switched on again, so the next failover goes the other
way.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from deploy.journey import TRANSIENT_CONFLICTS
from deploy.platform import free_port

BIN_SETTING = "POSTGRES_BIN"
TOOLS = ("initdb", "postgres", "pg_basebackup")


def find_bindir(environ=None) -> Path | None:
    """The directory holding initdb, postgres and pg_basebackup, or None."""
    environ = os.environ if environ is None else environ
    candidates: list[str] = []
    if environ.get(BIN_SETTING):
        candidates.append(environ[BIN_SETTING])
    else:
        pg_config = shutil.which("pg_config", path=environ.get("PATH", os.defpath))
        if pg_config:
            try:
                candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                                 timeout=10).stdout.strip())
            except (OSError, subprocess.SubprocessError):
                pass
        candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for candidate in candidates:
        if candidate and all(os.access(Path(candidate) / tool, os.X_OK) for tool in TOOLS):
            return Path(candidate)
    return None


def _version(path: str) -> tuple[int, ...]:
    digits = Path(path).parent.name
    return tuple(int(part) for part in digits.split(".") if part.isdigit()) or (0,)


def where_looked(environ=None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(BIN_SETTING):
        return f"{BIN_SETTING}={environ[BIN_SETTING]}"
    return f"pg_config --bindir, /usr/lib/postgresql/*/bin (or set {BIN_SETTING})"


def _as_postgres() -> dict:
    """subprocess arguments: root runs the servers as the postgres OS user (they refuse root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres"}


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(Path(stat).parent.name))
    return found


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _connect(port: int, dbname: str = "postgres", **params):
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, connect_timeout=5,
                            **params)


def _query(port: int, sql: str, autocommit: bool = True):
    connection = _connect(port)
    try:
        connection.autocommit = autocommit
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


class Server:
    """One postgres process (postmaster and its children in a process group of their own)."""

    def __init__(self, bindir: Path, datadir: Path, port: int, log: Path):
        self.bindir = bindir
        self.datadir = datadir
        self.port = port
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)],
                cwd=self.datadir.parent, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                **_as_postgres())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres on {self.port} exited with {self.process.returncode}; see {self.log}")
            try:
                _connect(self.port).close()
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"postgres on {self.port} did not accept connections within {timeout:g} s; "
                           f"see {self.log}")

    def crash(self) -> None:
        """SIGKILL the postmaster and every process it started (backends, walsender, checkpointer...), as a
        crashed server stops: nothing is flushed, no client is told. (Each child of a postmaster is a process
        group of its own, so the postmaster's group is not enough.)"""
        if self.process is None:
            return
        # stopped first, all of them, then killed: a backend that saw its postmaster die would tell its client
        # ("terminating connection due to unexpected postmaster exit") in the microseconds between two kills
        _signal([self.process.pid], signal.SIGSTOP)  # it forks no more children
        children = _children(self.process.pid)
        _signal(children, signal.SIGSTOP)
        _signal([self.process.pid, *children], signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it takes too long."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        self.crash()

    def is_primary(self) -> bool:
        return _query(self.port, "SELECT NOT pg_is_in_recovery()")[0][0]


class ReplicatedPostgres:
    """A primary and a synchronous streaming standby, on free ports; ``service_uri`` names both."""

    def __init__(self, bindir: Path | None = None, root: Path | None = None):
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError(f"no PostgreSQL server binaries found; looked at {where_looked()}")
        self.bindir = found
        self.root = root or Path(tempfile.mkdtemp(prefix="credence-faults-pg-"))
        self._chown(self.root)
        ports = (free_port(), free_port())
        self.servers = [Server(self.bindir, self.root / f"node-{port}", port, self.root / f"node-{port}.log")
                        for port in ports]
        self.primary, self.standby = self.servers
        self.failovers: list[dict] = []

    @staticmethod
    def _chown(path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *command: str, timeout: float = 300.0) -> None:
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                              **_as_postgres())
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        primary = self.primary
        self._run(str(self.bindir / "initdb"), "-D", str(primary.datadir), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C")
        with open(primary.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# the fault suite's primary (tests/faults/standby.py)\n"
                       "listen_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\n"
                       "max_connections = 400\n"  # five services' pools (12+8 and 4+8 each) and second instances
                       "wal_level = replica\n"
                       "max_wal_senders = 10\n"
                       "wal_keep_size = '512MB'\n"
                       "hot_standby = on\n")
        primary.start()
        self._attach_standby()

    def _attach_standby(self) -> None:
        """Make ``self.standby`` a fresh copy of ``self.primary`` that streams from it, then make the primary's
        commits wait for it (synchronous replication)."""
        primary, standby = self.primary, self.standby
        if standby.datadir.exists():
            shutil.rmtree(standby.datadir)
        self._run(str(self.bindir / "pg_basebackup"), "-D", str(standby.datadir), "-h", "127.0.0.1",
                  "-p", str(primary.port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast")
        # the copy carries the primary's ALTER SYSTEM settings (postgresql.auto.conf); once promoted, a server
        # that waited for a standby of its own would block every commit until one came
        with open(standby.datadir / "postgresql.auto.conf", "a") as conf:
            conf.write("synchronous_standby_names = ''\n")
        standby.start()
        _query(primary.port, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        _query(primary.port, "SELECT pg_reload_conf()")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _query(primary.port, "SELECT sync_state FROM pg_stat_replication") == [("sync",)]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the standby on {standby.port} did not become synchronous; see {standby.log}")

    def close(self, keep: bool = False) -> None:
        """Stop both servers; their directory (data and logs) is removed unless ``keep`` (for a post-mortem)."""
        for server in self.servers:
            server.stop()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- addresses -----------------------------------------------------------------------------------------------

    def hosts_query(self) -> str:
        return "&".join(f"host=127.0.0.1:{server.port}" for server in self.servers) + \
            "&target_session_attrs=read-write"

    def service_uri(self, dbname: str) -> str:
        """What a service is configured with: both servers; libpq keeps the one that accepts writes. A
        connection attempt gives a host 5 s (``connect_timeout``, per host) before trying the next."""
        return f"postgresql://postgres@/{dbname}?{self.hosts_query()}&connect_timeout=5"

    @property
    def admin_uri(self) -> str:
        return self.service_uri("postgres")

    # -- the fault -----------------------------------------------------------------------------------------------

    def fail_over(self, at_work: bool = True) -> float:
        """Crash the primary while a service's transaction is open on it (``at_work``), then promote the standby;
        returns the seconds from the crash until the new primary accepts writes.

        The crash is timed, not random: the primary's sessions are polled until a service's COMMIT waits for the
        standby's confirmation (``wait_event = 'SyncRep'``: the outcome its worker cannot know, since the WAL may
        or may not have reached the standby), else, after 5 s, until any service transaction is open (a
        statement running, or idle in a transaction); at most 15 s, then it strikes anyway. What it struck is
        kept in ``failovers``."""
        struck = self._moment_to_strike(self.primary.port) if at_work else "whatever was running"
        began = time.monotonic()
        crashed = self.crash_primary()
        promoted = self.promote_standby()
        seconds = time.monotonic() - began
        self.failovers.append({"at": time.time(), "crashed": crashed.port, "promoted": promoted.port,
                               "seconds": seconds, "struck": struck})
        return seconds

    def crash_primary(self) -> Server:
        self.primary.crash()
        return self.primary

    def promote_standby(self) -> Server:
        """``pg_promote()`` on the standby, which becomes ``primary``; the crashed server becomes ``standby`` (to
        be rebuilt: ``rebuild_standby``)."""
        promoted = self.standby
        if not _query(promoted.port, "SELECT pg_promote(true, 60)")[0][0]:
            raise RuntimeError(f"the standby on {promoted.port} was not promoted within 60 s; see {promoted.log}")
        while not promoted.is_primary():
            time.sleep(0.05)
        self.primary, self.standby = promoted, self.primary
        return promoted

    @staticmethod
    def _moment_to_strike(port: int) -> str:
        watching = _connect(port)
        watching.autocommit = True
        sessions = ("SELECT datname, state, wait_event, left(query, 60) FROM pg_stat_activity "
                    "WHERE datname LIKE 'credence_faults_%' AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                    "AND backend_type = 'client backend'")
        began = time.monotonic()
        try:
            with watching.cursor() as cursor:
                while time.monotonic() - began < 15:
                    cursor.execute(sessions)
                    found = cursor.fetchall()
                    in_commit = [row for row in found if row[2] == "SyncRep"]
                    if in_commit:
                        return "a COMMIT waiting for the standby ({0}: {3})".format(*in_commit[0])
                    if found and time.monotonic() - began > 5:
                        return "an open transaction ({0}, {1}: {3})".format(*found[0])
        finally:
            watching.close()
        return "no service transaction seen open in 15 s"

    def rebuild_standby(self) -> float:
        """A new standby from the new primary, on the crashed primary's port; synchronous again. Returns seconds."""
        began = time.monotonic()
        self._attach_standby()
        return time.monotonic() - began


FAILOVER = "PostgreSQL primary SIGKILLed, standby promoted"
REBUILT = "new synchronous standby from the new primary"


def failover_plan(postgres: ReplicatedPostgres) -> list[tuple[str, object]]:
    """The suite's faults in ``--standby`` mode: a failover, then a new standby (so the next one goes back)."""
    return [(FAILOVER, postgres.fail_over), (REBUILT, postgres.rebuild_standby)]


class CallerView:
    """What the journeys' callers saw: every answer of 500 and above, every 409 a journey retries (with its
    code), and every request that got no answer (connection refused or reset, timed out), with the time;
    recorded in the suite's process by wrapping ``requests.Session.request`` (the journeys' only HTTP client;
    the suite's other clients are AMQP and SQL)."""

    def __init__(self):
        self.failures: list[tuple[float, str]] = []

    def install(self) -> None:
        import requests

        original = requests.Session.request
        failures = self.failures

        def request(session, method, url, *args, **kwargs):
            try:
                response = original(session, method, url, *args, **kwargs)
            except requests.RequestException as exc:
                failures.append((time.time(), type(exc).__name__))
                raise
            if response.status_code >= 500:
                failures.append((time.time(), str(response.status_code)))
            elif response.status_code == 409:  # a concurrent change, or a retry whose first attempt took effect
                try:
                    code = response.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = None
                if code in TRANSIENT_CONFLICTS:  # not the refusals a journey expects (a username taken)
                    failures.append((time.time(), f"409 {code}"))
            return response

        requests.Session.request = request

    def report(self, postgres: ReplicatedPostgres) -> list[str]:
        """A line per failover: what it struck, and what callers saw in the 30 s after the crash."""
        lines = []
        crashes = [failover["at"] - failover["seconds"] for failover in postgres.failovers]
        for number, (failover, crashed) in enumerate(zip(postgres.failovers, crashes, strict=True), 1):
            until = min([crashed + 30, *[later for later in crashes if later > crashed]])  # 30 s, or the next one
            seen = [(at - crashed, what) for at, what in self.failures if crashed <= at < until]
            counted = Counter(what for _after, what in seen)
            spread = f", the last {max(after for after, _ in seen):.1f} s after the crash" if seen else ""
            lines.append(f"failover {number}: struck {failover['struck']}; promoted in {failover['seconds']:.1f} s; "
                         f"callers then saw {dict(counted) or 'no failure'}{spread}")
        return lines


def require_postgres_binaries(environ=None) -> None:
    """Skips the calling test where the PostgreSQL server binaries are not installed; fails it under CI."""
    import pytest

    from tests.faults.broker import in_ci

    if find_bindir(environ) is not None:
        return
    message = f"no PostgreSQL server binaries on this machine (looked at {where_looked(environ)})"
    if in_ci(environ):
        pytest.fail(f"{message}: CI must run the standby failover; install PostgreSQL or set {BIN_SETTING}",
                    pytrace=False)
    pytest.skip(message)
