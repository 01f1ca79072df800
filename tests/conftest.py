# eventlet must patch the standard library before anything imports sockets or threads: nameko's
# containers run on green threads, and the test process hosts them.
import eventlet

eventlet.monkey_patch()

import credence_common  # noqa: E402,F401  (filters eventlet's import-time deprecation notice)
