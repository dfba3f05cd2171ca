"""`python -m purge`: see purge.cli."""

from purge.cli import main

raise SystemExit(main())
