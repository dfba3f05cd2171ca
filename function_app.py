"""The Azure Functions app (Python v2 model): triggers only.

Each handler turns its trigger into a call to purge.functions and the result into a response or
log lines. The app is created at import without reading any setting (the host resolves
%PURGE_SCHEDULE% itself), and heavy modules load inside the handlers so that indexing is fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

HOST_JSON = Path(__file__).with_name("host.json")
JSON_MIMETYPE = "application/json"


@app.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", use_monitor=True)
async def purge_timer(timer: func.TimerRequest) -> None:
    """Run the rules due on this tick; an invalid configuration logs and deletes nothing."""
    from purge.functions.common import read_function_timeout
    from purge.functions.timer import run_timer_tick

    await run_timer_tick(
        os.environ,
        past_due=timer.past_due,
        schedule_status=getattr(timer, "schedule_status", None),
        function_timeout=read_function_timeout(HOST_JSON),
    )


@app.route(route="purge", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def purge_http(req: func.HttpRequest) -> func.HttpResponse:
    """Run the configured rules now: a dry run unless the body says `"dryRun": false`."""
    from purge.functions.http import run_http_purge

    answer = await run_http_purge(
        os.environ,
        body=req.get_body(),
        content_type=req.headers.get("content-type"),
        query=dict(req.params),
    )
    return func.HttpResponse(answer.text, status_code=answer.status, mimetype=JSON_MIMETYPE)


@app.route(route="purge/status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def purge_status(req: func.HttpRequest) -> func.HttpResponse:
    """The parsed configuration (no secrets), its errors, the next fire times, the version."""
    from purge.functions.common import read_function_timeout
    from purge.functions.status import status_document

    document = status_document(os.environ, function_timeout=read_function_timeout(HOST_JSON))
    return func.HttpResponse(json.dumps(document, indent=2), mimetype=JSON_MIMETYPE)


@app.route(route="purge/runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def purge_runs(req: func.HttpRequest) -> func.HttpResponse:
    """The recorded runs, newest first, a page at a time (`?limit=N&next=CURSOR`)."""
    from purge.functions.history import runs_response

    answer = await runs_response(os.environ, dict(req.params))
    return func.HttpResponse(answer.text, status_code=answer.status, mimetype=JSON_MIMETYPE)


@app.route(route="purge/runs/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def purge_run(req: func.HttpRequest) -> func.HttpResponse:
    """One run's record: the write-ahead plan and the report."""
    from purge.functions.history import run_response

    answer = await run_response(os.environ, req.route_params.get("id", ""))
    return func.HttpResponse(answer.text, status_code=answer.status, mimetype=JSON_MIMETYPE)


@app.route(route="purge/restore", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def purge_restore(req: func.HttpRequest) -> func.HttpResponse:
    """Put back the tags a run deleted: a dry run unless the body says `"dryRun": false`."""
    from purge.functions.history import restore_response

    answer = await restore_response(
        os.environ,
        body=req.get_body(),
        content_type=req.headers.get("content-type"),
        query=dict(req.params),
    )
    return func.HttpResponse(answer.text, status_code=answer.status, mimetype=JSON_MIMETYPE)
