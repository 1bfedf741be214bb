"""``python -m perturbridge.cli``: the ``perturbridge`` command."""

from ._main import main

main()
