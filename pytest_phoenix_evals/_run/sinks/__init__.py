"""sinks layer."""
