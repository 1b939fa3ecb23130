"""_phoenix layer: the only code that knows Phoenix's REST, GraphQL and OTLP formats.

``http`` (addresses, headers, errors, the retry policy), ``wire`` (JSON both ways),
``gateway`` (the typed calls: the ``Gateway`` class, made of ``base`` and one module of calls
per resource: ``datasets``, ``experiments``, ``prompts``, ``previews``), ``traces`` (spans and
their annotations) and ``offline`` (snapshots and their replay). Nothing is imported here, so
that importing one of them stays as cheap as that one.
"""
