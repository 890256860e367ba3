"""``python -m rtcforensics.case ingest|query|watch|fleet ...``"""

import sys

from .cli import main

sys.exit(main())
