"""Start one service process: ``python -m credence_common.runtime.runner CONFIG module:Class``.

Used by ``make run``, docker-compose and Kubernetes alike. It silences eventlet's deprecation
notice, monkey-patches before anything else imports sockets, loads the YAML config with
``${ENV:default}`` substitution, refuses unsafe production settings, then runs the service the way
``nameko run`` does.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)

import eventlet  # noqa: E402

eventlet.monkey_patch()

from credence_common.persistence.green_postgres import patch_psycopg  # noqa: E402

patch_psycopg()  # psycopg2 waits on eventlet's hub, not in C (credence_common/persistence/green_postgres.py)

from credence_common.runtime.nameko_fixes import patch_nameko  # noqa: E402

patch_nameko()  # a service stopped while it is still connecting stops at once (nameko_fixes.py says why)

import gc  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from credence_common.bus.entrypoints import install_log_filters  # noqa: E402
from credence_common.config import ConfigurationRefused, assert_safe_for_environment, load_config  # noqa: E402
from credence_common.observability.gc_tuning import tune_garbage_collector  # noqa: E402
from credence_common.observability.logs import configure_logging, log_format  # noqa: E402
from credence_common.runtime.malloc_tuning import fix_mmap_threshold  # noqa: E402


def load_service_class(path: str):
    module_name, _, class_name = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m credence_common.runtime.runner CONFIG_YAML module:ServiceClass", file=sys.stderr)
        return 2
    config_path, service_path = argv
    config = load_config(config_path)
    service_cls = load_service_class(service_path)
    try:
        fmt = log_format(config)
    except ValueError as refusal:
        print(refusal, file=sys.stderr)
        return 2
    configure_logging(service_cls.name, level=config.get("LOG_LEVEL", "INFO"), fmt=fmt)
    install_log_filters()
    logging.getLogger("kombu").setLevel(logging.WARNING)
    logging.getLogger("amqp").setLevel(logging.WARNING)
    try:
        assert_safe_for_environment(service_cls.name, config)
    except ConfigurationRefused as refusal:
        print(refusal, file=sys.stderr)
        return 3
    logging.getLogger(__name__).info("starting %s", service_cls.name)
    tune_garbage_collector()
    fix_mmap_threshold()  # large transient C blocks (argon2id's 19 MiB) go back on free (malloc_tuning.py)
    return run(service_cls, config, grace_seconds=float(config.get("SHUTDOWN_GRACE_SECONDS", 25)))


def dump_green_threads() -> str:
    """The stack of every green thread, for ``kill -USR1 <pid>``: py-spy and friends see only the hub's OS
    thread, not the workers waiting on a socket or a lock."""
    import traceback

    import greenlet

    stacks = []
    for candidate in gc.get_objects():
        if isinstance(candidate, greenlet.greenlet) and candidate.gr_frame is not None:
            stacks.append("".join(traceback.format_stack(candidate.gr_frame)))
    return f"{len(stacks)} green threads\n" + "\n".join(stacks)


def run(service_cls, config: dict, grace_seconds: float) -> int:
    """``nameko run``, with a shutdown that cannot hang.

    SIGTERM (or SIGINT) drains: nameko stops taking messages, lets the running workers finish (their replies
    and acks go out) and stops. If that takes longer than ``grace_seconds`` (a broker that is gone keeps
    nameko's consumer in its reconnect loop, and its stop would wait for ever), or a second signal comes,
    the service is killed: unacknowledged messages go back to their queues and are redelivered, which the
    consumers' idempotence makes harmless. Returns 0 after a drain, 1 after a kill. The default 25 s stays
    under Kubernetes' 30 s before SIGKILL."""
    import os
    import signal

    from nameko.runners import ServiceRunner

    log = logging.getLogger(__name__)
    runner = ServiceRunner(config)
    runner.add_service(service_cls)
    outcome = {"code": 0, "stopping": False}

    def kill(reason: str) -> None:
        if outcome["code"] != 0:
            return
        outcome["code"] = 1
        log.error("%s: %s; killing it (unacknowledged messages are redelivered)", service_cls.name, reason)
        eventlet.spawn_n(runner.kill)
        # nameko's kill can block in the same reconnect loop as its stop: the process ends regardless, and
        # the broker puts back whatever it had handed to this process when its connection goes
        eventlet.sleep(2)
        logging.shutdown()
        os._exit(1)

    def drain() -> None:
        log.info("%s: stopping: no new work, waiting for running workers (at most %.0f s)", service_cls.name,
                 grace_seconds)
        watchdog = eventlet.spawn_after(grace_seconds, kill, f"did not stop within {grace_seconds:.0f} s")
        runner.stop()
        watchdog.cancel()

    def on_signal(signum, _frame) -> None:
        # a signal handler runs on the main loop and cannot block on eventlet: the work goes to a green thread
        if outcome["stopping"]:
            eventlet.spawn_n(kill, f"second {signal.Signals(signum).name}")
            return
        outcome["stopping"] = True
        eventlet.spawn_n(drain)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: eventlet.spawn_n(
        lambda: log.warning("%s: SIGUSR1: %s", service_cls.name, dump_green_threads())))
    runner.start()
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
            break
        except InterruptedError:  # a signal arrived while the main green thread waited: keep waiting
            continue
        except Exception:  # a container died: nameko has already logged why
            log.exception("%s: stopped by an error", service_cls.name)
            return 1
    log.info("%s: stopped", service_cls.name)
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
