"""Start one service process: ``python -m credence_common.runner CONFIG module:Class``.

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

import gc  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from credence_common.config import ConfigurationRefused, assert_safe_for_environment, load_config  # noqa: E402
from credence_common.entrypoints import install_log_filters  # noqa: E402


def load_service_class(path: str):
    module_name, _, class_name = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def tune_garbage_collector() -> None:
    """Everything imported so far lives as long as the process: move it out of the collector's sight
    (gc.freeze) and collect the young generation less often. Full collections over the modules' objects
    otherwise pause a busy process for tens of milliseconds and make the slowest 1% of requests (p99)
    two to three times slower than the median (measured with bench/public_check.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m credence_common.runner CONFIG_YAML module:ServiceClass", file=sys.stderr)
        return 2
    config_path, service_path = argv
    config = load_config(config_path)
    logging.basicConfig(
        level=config.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_filters()
    logging.getLogger("kombu").setLevel(logging.WARNING)
    logging.getLogger("amqp").setLevel(logging.WARNING)
    service_cls = load_service_class(service_path)
    try:
        assert_safe_for_environment(service_cls.name, config)
    except ConfigurationRefused as refusal:
        print(refusal, file=sys.stderr)
        return 3
    from nameko.cli.run import run

    logging.getLogger(__name__).info("starting %s", service_cls.name)
    tune_garbage_collector()
    run([service_cls], config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
