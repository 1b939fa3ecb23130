"""_evaluators layer."""
