"""Sources: where cases come from (a dataset's examples today; a project's spans next)."""
