"""`python -m gan_core ...`: see gan_core/cli.py."""

import sys

from .cli import main

sys.exit(main())
