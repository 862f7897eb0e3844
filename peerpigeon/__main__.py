"""``python -m peerpigeon``: the command line."""

from __future__ import annotations

import sys

from peerpigeon.cli import main

sys.exit(main())
