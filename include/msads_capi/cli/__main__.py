"""``python -m include.msads_capi.cli``: the same as the ``msads`` command."""

from __future__ import annotations

import sys

from include.msads_capi.cli import main

sys.exit(main())
