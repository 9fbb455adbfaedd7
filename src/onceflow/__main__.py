"""`python -m onceflow` runs the CLI."""

import sys

from onceflow.cli import main

sys.exit(main())
