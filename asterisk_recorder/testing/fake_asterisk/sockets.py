"""One accepted ``/ari/events`` socket: its queue of frames and the task that sends them.

This module owns ``WsConn``: frames are queued without waiting and sent in order by one task
per socket, which holds them while the fake is stalled (``unstalled`` cleared) and stops
quietly when the socket is gone. It must not decide what is sent or to whom (``events``).
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

__all__ = ["WsConn"]


class WsConn:
    """One accepted event socket and the task that sends its queued frames in order."""

    def __init__(
        self,
        unstalled: asyncio.Event,
        ws: web.WebSocketResponse,
        request: web.Request,
        apps: tuple[str, ...],
    ) -> None:
        self.unstalled = unstalled
        self.ws = ws
        self.request = request
        self.apps = apps
        self.out: asyncio.Queue[tuple[bytes | str, WSMsgType]] = asyncio.Queue()
        self.sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            data, kind = await self.out.get()
            await self.unstalled.wait()
            if self.ws.closed:
                return
            try:
                if kind is WSMsgType.TEXT and isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    payload = data.encode() if isinstance(data, str) else data
                    await self.ws.send_frame(payload, kind)
            except (ConnectionError, RuntimeError):
                return
