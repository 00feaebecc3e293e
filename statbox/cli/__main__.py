"""``python -m statbox.cli``: the ``statbox`` command."""

from statbox.cli import main

raise SystemExit(main())
