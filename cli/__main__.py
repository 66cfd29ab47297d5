"""`python -m cli`: see cli/commands.py."""

from cli.commands import main

raise SystemExit(main())
