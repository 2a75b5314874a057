"""``python -m ml train | evaluate | predict | extract`` (see ``ml/cli.py``)."""

import sys

from .cli import main

sys.exit(main())
