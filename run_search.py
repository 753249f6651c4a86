"""Search for the most accurate network under a latency budget: ``--latency-budget 20ms``."""

import sys

from nas.cli import search_main

if __name__ == "__main__":
    sys.exit(search_main())
