"""``python -m launchml`` is the ``launchml`` command."""

from launchml.cli.main import main

main()
