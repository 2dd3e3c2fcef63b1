"""`python -m loop` is the `loop` command."""

import sys

from loop.cli import main

sys.exit(main())
