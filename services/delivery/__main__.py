"""``python -m services.delivery``: run the faust worker (``worker`` is the default command)."""

import sys

from services.delivery.agents import app

if len(sys.argv) == 1:
    sys.argv += ["worker", "--loglevel", "info"]
app.main()
