"""The local task server behind ``render-workflows dev``.

It runs an app's tasks on this machine (one process per attempt, forked from a warm
interpreter for Python apps) and serves Render's Workflows REST + SSE API under ``/v1``,
so the same client code works locally and against Render. State lives in SQLite under
the state dir (``.render`` by default) and survives restarts.

Start it from the command line (``render-workflows dev main:app``) or, in tests, with
:class:`render_sdk.testing.LocalServer`. The modules here are private.
"""
