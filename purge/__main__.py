"""`python -m purge`: see purge.cli.main."""

from purge.cli.main import main

raise SystemExit(main())
