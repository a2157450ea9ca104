"""`python -m workbench`: the same command as `digit-workbench`."""

import sys

from workbench.cli.launch import main

sys.exit(main())
