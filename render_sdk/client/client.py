"""render_sdk 0.4.0's ``Client`` (``render_sdk.client.client``), kept for code written for it.

New code uses :class:`render_sdk.Render` (async) or :class:`render_sdk.RenderSync`;
``Render(...).client`` and ``Client(...)`` give the same services under 0.4.0's names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _constants as C

if TYPE_CHECKING:
    from ..experimental import ExperimentalService
    from ._async import Render, WorkflowsService

__all__ = ["Client"]


class Client:
    """0.4.0's client object: ``Client(token, base_url, owner_id, region)``.

    Arguments may be positional, as in 0.4.0; environment variables apply as for
    :class:`~render_sdk.Render`. Unlike 0.4.0 there is no ``internal`` attribute (that
    was the generated OpenAPI client, which this SDK does not have).

    Attributes:
        token: The API key, or None against a local task server.
        base_url: The server's URL without ``/v1``.
        owner_id: Default workspace id for object storage, or None.
        region: Default region for object storage, or None.
        render: The :class:`~render_sdk.Render` doing the work.

    Raises:
        ConfigurationError: No token against Render's API.
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str = C.DEFAULT_BASE_URL,
        owner_id: str | None = None,
        region: str | None = None,
    ) -> None:
        from ._async import Render

        self._bind(Render(token=token, base_url=base_url, owner_id=owner_id, region=region))

    @classmethod
    def _of(cls, render: Render) -> Client:
        client = cls.__new__(cls)
        client._bind(render)
        return client

    def _bind(self, render: Render) -> None:
        self.render = render
        config = render.config
        self.token = config.token
        self.base_url = config.base_url
        self.owner_id = config.owner_id
        self.region = config.region

    @property
    def workflows(self) -> WorkflowsService:
        """Run, watch, cancel and list task runs."""
        return self.render.workflows

    @property
    def experimental(self) -> ExperimentalService:
        """Experimental APIs (object storage)."""
        return self.render.experimental

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"
