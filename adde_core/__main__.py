"""Allow ``python -m adde_core``."""

import sys

from adde_core.cli import main

sys.exit(main())
