"""The zygote warms the codec from the generated wire tables, not from module paths."""

from __future__ import annotations

from render_sdk import _wire
from render_sdk._gen import wire_tables
from render_sdk.devserver import _zygote
from render_sdk.models import tasksocket


def test_every_socket_message_is_compiled_before_the_fork() -> None:
    _wire._codecs.clear()
    _zygote._warm_codec()
    warmed = {cls for cls, dialect in _wire._codecs if dialect == _wire.SOCKET.name}
    socket_messages = {
        name.rpartition(".")[2]
        for name, facts in wire_tables.MESSAGES.items()
        if facts.dialect == "socket"
    }
    assert socket_messages == set(tasksocket.__all__)
    assert {cls.__name__ for cls in warmed} >= socket_messages
