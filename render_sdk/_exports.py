"""Make exported names report their public module (``render_sdk.workflows.Options``).

Classes and functions live in ``_private`` modules; without this, reprs, tracebacks and
``TypeError`` messages would name ``render_sdk.workflows._definitions.Options``. Each
public package calls :func:`publish` once, after its imports, with its own namespace.

A package claims only the names defined in its own module or in its ``_private``
submodules, so the reported path never depends on which package was imported first:
``ObjectClient`` is ``render_sdk.experimental.ObjectClient`` even when it is reached
through ``render_sdk.client``. Modules whose public home cannot be imported cheaply
(``render_sdk._errors``, which the task worker loads without the REST client) name
their home with ``home=``. The generated models live in ``render_sdk._gen``, outside any
public package's ``_private`` tree, so the package that re-exports them names their
generated module with ``claim=`` (``render_sdk.models`` claims
``render_sdk._gen.render.workflows.v1``); their string field annotations, which betterproto2
resolves in ``sys.modules[cls.__module__]``, are resolved first like every other class's.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["publish"]


def publish(
    namespace: Mapping[str, Any], *, home: str | None = None, claim: Collection[str] = ()
) -> None:
    """Point ``__module__`` of the names in ``namespace["__all__"]`` at their public module.

    Args:
        namespace: The calling module's ``globals()``; its ``__all__`` lists the exports.
        home: The public module to report; defaults to the calling module itself.
        claim: Further modules (generated ones) whose definitions this package owns.
    """
    module = namespace["__name__"]
    for name in namespace["__all__"]:
        value = namespace[name]
        if not isinstance(value, type | types.FunctionType):
            continue  # constants, aliases of builtins, submodules: nothing to rename
        defined_in = value.__module__
        if defined_in == module or defined_in.startswith(f"{module}._") or defined_in in claim:
            if isinstance(value, type):
                _resolve_annotations(value)
            value.__module__ = home or module


def _resolve_annotations(cls: type) -> None:
    """Evaluate ``cls``'s string annotations while ``__module__`` still names their module.

    ``typing.get_type_hints`` (and pydantic, cattrs, ...) evaluate a class's annotations
    in ``sys.modules[cls.__module__]``; after :func:`publish` that is the public module,
    which lacks the defining module's imports (``Sequence``, ``datetime``, ...). Classes
    whose hints cannot be resolved even now keep their strings, as before.
    """
    own = inspect.get_annotations(cls)
    if not own:
        return
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable today (TYPE_CHECKING-only names): leave it as it was
        return
    cls.__annotations__ = {key: hints[key] for key in own}
