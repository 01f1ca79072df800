import credence_common  # noqa: F401  (quiets eventlet's import-time notice)
