"""``python -m dialoop`` is the ``dialoop`` command."""

from dialoop.cli import main

main()
