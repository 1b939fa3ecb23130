"""_tracing layer: OTLP export on private providers (``export``) and OpenInference span
helpers (``spans``). Nothing is imported here: importing the package stays cheap."""
