"""``python -m trio_smith``: the ``trio-smith`` command."""

from .cli import main

raise SystemExit(main())
