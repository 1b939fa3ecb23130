"""_report layer."""
