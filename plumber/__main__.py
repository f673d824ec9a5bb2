"""``python -m plumber`` is the ``plumber`` command."""

import sys

from plumber.cli import main

sys.exit(main())
