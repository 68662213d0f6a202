"""``python -m consentgate`` runs the same command line as the ``consentgate`` script."""

from consentgate.cli import main

raise SystemExit(main())
