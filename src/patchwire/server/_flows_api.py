"""REST routes for durable flows: the flow catalog, starting runs, and watching, retrying and
cancelling them. The routes share the app's one flow engine (see ``create_app(engine=...)``).

End users (an end-user token) start runs that act for them — their calls go through their
own connections only — and see, retry and cancel those runs alone: another's run answers
404 as a missing one does. They read the catalog of the flows they may start (those with
``trigger.manual``) without the definitions: a definition is the operator's (it may name the
operator's connections and the server's files), and an end user needs only what a flow is
and what input it takes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from patchwire.access import end_user_of, requires
from patchwire.errors import (
    FlowInputError,
    RunStateError,
    UnknownFlow,
    UnknownRun,
    ValidationProblem,
)
from patchwire.flows import FINISHED, Engine, RunRecord, StepRecord

if TYPE_CHECKING:
    from patchwire.flows import FlowRegistry, FlowSpec, Trigger

__all__ = ["flows_router"]

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled"]
#: the longest a request may hold its connection waiting for a run
MAX_WAIT_S = 300.0


class RunRequest(BaseModel):
    input: Any = Field(default_factory=dict, description="the run's input (the flow's schema)")
    wait: bool = Field(False, description="answer when the run finished or waits, or at "
                                          "timeout")
    timeout: float = Field(30.0, gt=0, le=MAX_WAIT_S, description="seconds, with wait")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=200,
        description="starting the same key again answers with the first run (an end "
                    "user's keys are theirs alone)")
    end_user: str | None = Field(
        None, min_length=1, max_length=200,
        description="the end user the run acts for: its calls use their connections only "
                    "(an end-user token's runs act for its end user)")


def _triggers(trigger: Trigger) -> dict[str, Any]:
    return trigger.model_dump(mode="json", by_alias=True)


def flow_summary(flow: FlowSpec) -> dict[str, Any]:
    return {"id": flow.id, "version": flow.version, "title": flow.title,
            "description": flow.description, "triggers": _triggers(flow.trigger),
            "input_schema": flow.input}


def run_body(record: RunRecord, steps: list[StepRecord] | None = None) -> dict[str, Any]:
    body = {**record.to_dict(), "dead_letter": record.dead_letter}
    if steps is not None:
        body["steps"] = [s.to_dict() for s in steps]
    return body


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def run_of(eng: Engine, run_id: str, end_user: str | None) -> RunRecord:
    """The run, if ``end_user`` (None: an operator) may see it; UnknownRun otherwise, the
    same answer as for a run that does not exist."""
    record = await eng.get_run(run_id)
    if end_user is not None and record.end_user != end_user:
        raise UnknownRun(f"no run with id {run_id!r}")
    return record


def flows_router(flows: FlowRegistry, eng: Engine) -> APIRouter:
    """``eng``: the app's engine (started and stopped by the app's lifespan)."""
    router = APIRouter(prefix="/api/v1")

    @router.get("/flows", dependencies=[requires("read", end_users=True)])
    async def list_flows(request: Request) -> list[dict[str, Any]]:
        if end_user_of(request) is not None:
            return [flow_summary(f) for f in flows if f.trigger.manual]
        return [flow_summary(f) for f in flows]

    @router.get("/flows/{flow_id}", dependencies=[requires("read", end_users=True)])
    async def get_flow(flow_id: str, request: Request) -> dict[str, Any]:
        flow = flows.get(flow_id)
        if end_user_of(request) is not None:
            if not flow.trigger.manual:  # not theirs to start: as if it did not exist
                raise UnknownFlow(f"no flow named {flow_id!r}")
            return flow_summary(flow)
        return {**flow_summary(flow), "source": flows.source_of(flow_id),
                "definition": flow.model_dump(mode="json", by_alias=True,
                                              exclude_defaults=True)}

    @router.post("/flows/{flow_id}/runs", dependencies=[requires("run", end_users=True)],
                 status_code=201)
    async def start_run(flow_id: str, body: RunRequest, request: Request,
                        response: Response) -> dict[str, Any]:
        acting = end_user_of(request)
        flow = flows.get(flow_id)
        if not flow.trigger.manual:
            if acting is not None:
                raise UnknownFlow(f"no flow named {flow_id!r}")
            raise RunStateError(f"flow {flow_id} cannot be started through the API "
                                "(trigger.manual is false)")
        end_user = body.end_user
        if acting is not None:
            if end_user not in (None, acting):
                raise FlowInputError(
                    "an end-user token starts runs for its own end user only",
                    [ValidationProblem("$.end_user", "leave it out, or give the token's "
                                                     "own end user")])
            end_user = acting
        run_id = await eng.start_run(flow_id, body.input, trigger="api",
                                     idempotency_key=body.idempotency_key,
                                     end_user=end_user)
        record: RunRecord | None = None
        if body.wait:
            try:
                record = await eng.wait(run_id, max_wait=body.timeout, until_waiting=True)
            except TimeoutError:
                record = None
        if record is None:
            record = await eng.get_run(run_id)
        # 201: the run is done; 202: it goes on (queued, running or waiting)
        if record.status not in FINISHED:
            response.status_code = 202
        response.headers["Location"] = str(request.url_for("get_run", run_id=run_id).path)
        steps = await eng.steps(run_id) if record.status in FINISHED else None
        return run_body(record, steps)

    @router.get("/runs", dependencies=[requires("read", end_users=True)])
    async def list_runs(
        request: Request, response: Response,
        flow: str | None = None,
        end_user: Annotated[str | None, Query(
            min_length=1, max_length=200,
            description="only the runs acting for this end user")] = None,
        status: RunStatus | None = None,
        dead: Annotated[bool, Query(description="dead letters only (failed runs)")] = False,
        since: datetime | None = None,
        until: datetime | None = None,
        before: Annotated[str | None, Query(description="a run id: runs older than it")] = (
            None),
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        if dead and status not in (None, "failed"):
            raise RunStateError("dead=true lists failed runs; drop the other status filter")
        acting = end_user_of(request)
        if acting is not None:
            if end_user not in (None, acting):
                return []  # another end user's: nothing, as if there were none
            end_user = acting
        records = await eng.list_runs(
            flow_id=flow, status="failed" if dead else status, since=_epoch(since),
            until=_epoch(until), before=before, limit=limit, end_user=end_user)
        if len(records) == limit:  # a full page: there may be older runs
            query = {k: v for k, v in request.query_params.items() if k != "before"}
            query["before"] = records[-1].id
            response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
        return [run_body(r) for r in records]

    # before /runs/{run_id}/...: a literal path is matched first
    @router.post("/runs/retry-failed", dependencies=[requires("run")])
    async def retry_failed(flow: str | None = None) -> dict[str, Any]:
        return {"retried": await eng.retry_failed(flow_id=flow)}

    @router.get("/runs/{run_id}", dependencies=[requires("read", end_users=True)],
                name="get_run")
    async def get_run(run_id: str, request: Request) -> dict[str, Any]:
        record = await run_of(eng, run_id, end_user_of(request))
        return run_body(record, await eng.steps(run_id))

    @router.post("/runs/{run_id}/retry", dependencies=[requires("run", end_users=True)])
    async def retry(run_id: str, request: Request) -> dict[str, Any]:
        await run_of(eng, run_id, end_user_of(request))
        return run_body(await eng.retry(run_id))

    @router.post("/runs/{run_id}/cancel", dependencies=[requires("run", end_users=True)])
    async def cancel(run_id: str, request: Request) -> dict[str, Any]:
        acting = end_user_of(request)
        await run_of(eng, run_id, acting)
        reason = ("cancelled by its end user through the API" if acting is not None
                  else "cancelled through the API")
        return run_body(await eng.cancel(run_id, reason=reason))

    return router
