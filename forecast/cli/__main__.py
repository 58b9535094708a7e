"""``python -m forecast.cli``: the ``forecast`` command (``torchrun -m forecast.cli train ...``)."""

import sys

from forecast.cli import main

sys.exit(main())
