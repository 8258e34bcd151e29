"""The package version.

0.5.0: this SDK implements render_sdk 0.4.0's public surface (plus the later fixes it
documents), so code pinned to ``render_sdk>=0.4`` can depend on it.
"""

__version__ = "0.5.0"
