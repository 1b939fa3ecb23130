"""_tracing layer."""
