"""``python -m bench``: run every benchmark, print the table, write bench/results/<time>.json."""

from bench.cli import main

raise SystemExit(main())
