"""The worker's HTTP pages: who may ask what (README, "Who can reach what").

``/health`` is open (supervisors and load balancers read it); ``/sql``, ``/verify`` and, when
switched on, ``/debug/tasks`` need the worker's token (streams/worker/webauth.py), refuse a browser's
cross-origin request and take JSON only.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import faust
from faust.web import Request, Response, View

from streams.domain import recount
from streams.worker import verify
from streams.kafka import internals
from streams.clickhouse.writer import BatchWriter
from streams.worker.webauth import refusal


def register_pages(app: faust.App, *, token: str, writer: BatchWriter, centre: Any,
                   health: Callable[[], dict[str, Any]], debug: bool) -> None:
    def refused(view: View, request: Request, json_body: bool = True) -> Response | None:
        why = refusal(request.headers, token, json_body)
        return view.json({"error": why[1]}, status=why[0]) if why else None

    @app.page("/verify")
    class VerifyView(View):
        """``ccpulse verify`` / ``recompute`` while this worker owns the embedded engine."""

        async def post(self, request: Request, **kwargs: Any) -> Response:
            if (no := refused(self, request)) is not None:
                return no
            body = await request.json()
            try:
                lo, hi = int(body["from_ms"]), int(body["to_ms"])
                tenant = body.get("tenant")
                if tenant is not None:
                    recount.quote(str(tenant))
            except (KeyError, TypeError, ValueError) as e:
                return self.json({"error": f"bad request: {e}"}, status=400)
            out = await writer.run_sync(lambda ch: verify.run(ch, centre, lo, hi, tenant, bool(body.get("repair")),
                                                              str(body.get("source") or "verify")))
            return self.json(out.as_json())

    @app.page("/sql")
    class SqlView(View):
        """Typed queries against the worker's embedded ClickHouse (locked to this process, so
        ``ccpulse sql`` comes here): with the token, from a program, on a read-only
        connection of their own with time and memory limits (``untrusted_query``)."""

        async def post(self, request: Request, **kwargs: Any) -> Response:
            if (no := refused(self, request)) is not None:
                return no
            body = await request.json()
            sql = str(body.get("sql", "")).strip()
            try:
                res = await writer.typed_query(sql)  # never holds up the writes
            except Exception as e:  # the caller gets ClickHouse's own message
                return self.json({"error": str(e)}, status=400)
            return self.json({"columns": res.columns, "rows": [[_jsonable(v) for v in r] for r in res.rows]})

    if debug:
        @app.page("/debug/tasks")
        class TasksView(View):
            """Every asyncio task of the worker with where it waits: for a worker that stops
            making progress without an error (thread dumps show only an idle event loop)."""

            async def get(self, request: Request, **kwargs: Any) -> Response:
                if (no := refused(self, request, json_body=False)) is not None:
                    return no
                return self.json(task_stacks(app))

    @app.page("/health")
    class HealthView(View):
        """Liveness and progress: counters, rows stored, and why the sink is degraded."""

        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.json(health())


def task_stacks(app: faust.App) -> dict[str, list[dict[str, Any]]]:
    """Every asyncio task of the main loop and of faust's consumer thread, with its stack."""
    loops = {"main": asyncio.get_running_loop()}
    if (loop := internals.consumer_loop(app.consumer)) is not None:
        loops["consumer"] = loop
    out: dict[str, list[dict[str, Any]]] = {}
    for name, loop in loops.items():
        out[name] = [{"task": t.get_name(), "coro": getattr(t.get_coro(), "__qualname__", "?"),
                      "stack": [f"{'/'.join(f.f_code.co_filename.rsplit('/', 2)[-2:])}:{f.f_lineno} "
                                f"{f.f_code.co_name}" for f in t.get_stack(limit=12)]}
                     for t in list(asyncio.all_tasks(loop))]
    return out


def task_dump(app: faust.App) -> str:
    return "\n".join(f"  [{loop}] {t['coro']}: " + " <- ".join(reversed(t["stack"]))
                     for loop, tasks in task_stacks(app).items() for t in tasks)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
