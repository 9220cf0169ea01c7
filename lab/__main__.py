"""Command line: python -m lab [--state-dir DIR] up|down|status|env|kill|freeze|...  (see --help)."""

from lab.cli import main

raise SystemExit(main())
