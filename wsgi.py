"""Run ispflow standalone: ``flask --app wsgi run`` or any WSGI server (``wsgi:app``)."""
from ispflow.standalone import create_app

app = create_app()
