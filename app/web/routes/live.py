"""Live updates: ``/api/events``, Server-Sent Events fed by PostgreSQL NOTIFY
(:mod:`app.web.live`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from app.web.deps import State, require_session
from app.web.models import AUTH

router = APIRouter(dependencies=[Depends(require_session)], responses=AUTH, tags=["live"])


@router.get("/api/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events: one per NOTIFY"}})
async def events(state: State) -> StreamingResponse:
    return StreamingResponse(state.hub.stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
