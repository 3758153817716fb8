"""``python -m gear predict ...``: the ``gear`` command (:mod:`gear.inference.cli`)."""

import sys

from gear.inference.cli import main

sys.exit(main())
