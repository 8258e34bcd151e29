"""``python -m render_sdk.workflows <module>:<app>``: same as ``render-workflows``."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
