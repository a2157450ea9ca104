"""`python -m workbench.cli`: the same command as `digit-workbench` (benchmarks run it in other commits' trees too)."""

import sys

from workbench.cli.entry import main

sys.exit(main())
