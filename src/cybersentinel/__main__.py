"""`python -m cybersentinel` runs the command line."""

from cybersentinel.cli import app

app()
