"""python -m chipctl: the same as the `chipctl` command."""

import sys

from chipctl.cli.main import main

sys.exit(main())
