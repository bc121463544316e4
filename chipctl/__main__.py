"""python -m chipctl: the same as the `chipctl` command."""

import sys

from chipctl.cli import main

sys.exit(main())
