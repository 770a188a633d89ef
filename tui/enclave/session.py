"""The workbench's session with enclaved: attach, follow, and reconnect when it goes away.

The session posts what happens as Textual messages (``enclave.messages``) to the screen that
shows it; it holds no widget. The first time nothing answers and spawning is allowed, it
starts enclaved in the background. After a daemon restart it attaches again, and the screen
rebuilds its panes from what the new daemon holds.
"""

from __future__ import annotations

import asyncio

from textual.message import Message
from textual.message_pump import MessagePump

from enclave.errors import DaemonError
from enclave.messages import Attached, Disconnected, SessionNotice, StatusChanged, TurnEvent
from enclave.protocol import DaemonClient
from enclave.spawn import Spawned, spawn_daemon

RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between attempts to reach the daemon
SPAWN_TIMEOUT = 60.0


class Session:
    def __init__(self, client: DaemonClient, *, spawn: bool, daemon_args: tuple[str, ...] = ()) -> None:
        self.client = client
        self.target: MessagePump | None = None  # where the messages go: the screen that runs it
        self.spawn = spawn  # start enclaved if none answers the first time
        self.daemon_args = daemon_args
        self.spawned: Spawned | None = None
        self.connected = False  # attached to a daemon and following it

    def _post(self, message: Message) -> None:
        if self.target is not None:
            self.target.post_message(message)

    async def run(self, target: MessagePump) -> None:
        """Attach and follow, posting to ``target``, for as long as the app runs; a failure is
        reported, then retried."""
        self.target = target
        delay = RETRY_FIRST
        while True:
            try:
                await self._connect()
                delay = RETRY_FIRST
                await self._follow()
                problem = "enclaved ended the event stream"
            except DaemonError as exc:
                # a connection that breaks reads "Stream removed (Socket closed)" in gRPC's words
                broke = self.connected and exc.code == "UNAVAILABLE"
                problem = "the connection to enclaved broke (it stopped or is restarting)" if broke else str(exc)
            except Exception as exc:
                problem = f"unexpected {type(exc).__name__}: {exc}"
            was_connected, self.connected = self.connected, False
            self._post(Disconnected(problem, was_connected))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _connect(self) -> None:
        try:
            await self.client.connect()
        except DaemonError:
            if not self.spawn:
                raise
            self.spawn = False  # once, at start: after that a missing daemon is waited for
            self.spawned = spawn_daemon(self.client.socket_path, self.daemon_args)
            self._post(SessionNotice(f"no enclaved was running: starting one in the background (pid {self.spawned.pid}) …", banner=True))
            await self._wait_for(self.spawned)
            self._post(SessionNotice(f"started enclaved in the background (pid {self.spawned.pid}, log {self.spawned.log})"))
        self.spawn = False

    async def _wait_for(self, spawned: Spawned) -> None:
        deadline = asyncio.get_running_loop().time() + SPAWN_TIMEOUT
        while True:
            if spawned.exited():
                raise DaemonError(f"the enclaved started in the background exited; see {spawned.log}")
            try:
                return await self.client.connect(timeout=0.5)
            except DaemonError:
                if asyncio.get_running_loop().time() > deadline:
                    raise

    async def _follow(self) -> None:
        """The daemon's agents and transcripts, then every turn and agent change live.

        Watch is subscribed first, so that a turn that ends or an agent that changes while the
        rest is read is not lost; a turn already in a transcript is not shown twice.
        """
        stream = self.client.watch()
        first = asyncio.ensure_future(anext(stream))
        status = None
        try:
            await asyncio.sleep(0)  # the Watch call starts before the reads
            agents = await self.client.list_agents()
            transcripts = {a.name: await self.client.transcript(a.name) for a in agents}
            shown = {m.turn_id for messages in transcripts.values() for m in messages if m.turn_id}
            self.connected = True
            self._post(Attached(agents, transcripts))
            status = asyncio.create_task(self._follow_status())
            event = await first
            while True:
                if not (isinstance(event, TurnEvent) and event.turn_id in shown):
                    self._post(event)
                event = await anext(stream)
        except StopAsyncIteration:
            return
        finally:
            first.cancel()
            if status is not None:
                status.cancel()

    async def _follow_status(self) -> None:
        """The models panel and each pane's context size, live from the Status stream."""
        try:
            async for snapshot in self.client.status():
                self._post(StatusChanged(snapshot))
        except DaemonError:
            pass  # the follow loop reports the disconnection and starts this again
