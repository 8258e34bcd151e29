"""``python -m render_sdk.devserver ...``: the same as ``render-workflows dev ...``."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
