"""_phoenix layer."""
