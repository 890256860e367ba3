"""``python -m rtcforensics`` runs the command line (same as the ``rtcforensics`` script)."""

import sys

from .cli import main

sys.exit(main())
