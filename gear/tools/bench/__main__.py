"""``python -m gear.tools.bench``."""

from gear.tools.bench.cli import main

main()
