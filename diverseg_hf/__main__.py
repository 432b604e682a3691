"""``python -m diverseg_hf`` runs the ``diverseg`` command."""

import sys

from .cli import main

sys.exit(main())
