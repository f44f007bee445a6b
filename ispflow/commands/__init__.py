"""The ``ispflow`` command line: Flask CLI commands, one module per feature.

Commands run inside a Flask app — the host panel's (``ispflow --app module:factory`` or
``ISPFLOW_APP``) or the standalone one — and take its ispflow settings, so they give the
panel's answers. The core packages they call (collector, search, retention, routers) need
no Flask.
"""
