"""``python -m memento.server``: serve memento over stdio."""

from . import run

run()
