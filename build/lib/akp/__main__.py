"""``python -m akp``: see :mod:`akp.cli`."""
import sys

from akp.cli import main

sys.exit(main())
