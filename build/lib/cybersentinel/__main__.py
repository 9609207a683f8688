"""`python -m cybersentinel` runs the command line."""

from cybersentinel.cli.app import app

app()
