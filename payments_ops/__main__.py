"""``python -m payments_ops``: the same as the ``payments-ops`` command."""

import sys

from payments_ops.cli import main

sys.exit(main())
