"""``python -m ticketing_devstack`` is ``ticketing``."""

from ticketing_devstack.cli import main

main()
