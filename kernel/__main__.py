"""``python -m kernel serve --config zoo.cfg``."""

import sys

from kernel.cli import main

sys.exit(main())
