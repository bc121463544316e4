"""python -m gui: the desktop app (same as chipctl-gui)."""

import sys

from gui.app import main

sys.exit(main())
