"""Starting a service process and reading its configuration from a worker."""
