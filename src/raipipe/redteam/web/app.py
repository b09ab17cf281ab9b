"""The human red-team page: a person chats with a target and flags a turn that breaks a policy.

Server-rendered, with nothing loaded from elsewhere and a little inline script for the keys. Keyboard
first: focus starts in the message box, Enter sends (Shift+Enter: new line), Escape leaves a text box,
F flags the last turn, / returns to the message box, N starts a new conversation, Ctrl+Enter submits
the flag; every control has a label. Form posts validate, store and redirect (post/redirect/get); a
bad field comes back as a 4xx page that names it and keeps what was typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from raipipe.errors import BackendError, RaipipeError, StoreError, UsageError
from raipipe.posttrain.ranking.store_ops import RankingError, check_rater
from raipipe.redteam.web.human_run import AlreadyFlaggedError, HumanRun, NotYoursError
from raipipe.web_support import page_env

RED_TEAMER_COOKIE = "raipipe_red_teamer"
FLAG_FIELDS = ("turn", "policy_id", "note", "benign")


def check_red_teamer(raw: str) -> str:
    """The ranking page's rule for a person's id (no spaces; 'ai:' is kept for machines), as field 'red_teamer'."""
    try:
        return check_rater(raw, "human")
    except RankingError as exc:
        raise UsageError(exc.message, field="red_teamer", hint="e.g. alice or kim.lee") from None


def status_of(exc: RaipipeError) -> int:
    """The HTTP status a person's mistake (4xx) or the target's failure (502) is answered with."""
    for kind, status in ((AlreadyFlaggedError, 409), (NotYoursError, 403), (StoreError, 404), (BackendError, 502)):
        if isinstance(exc, kind):
            return status
    return 400


class Page:
    """What every route needs: the run, the templates, and who is red teaming (a cookie)."""

    def __init__(self, run: HumanRun):
        self.run = run
        self.env = page_env("redteam")
        self.policies = sorted(run.pack.policies.values(), key=lambda p: p.id)

    def render(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(run_id=self.run.run_id, target=self.run.target.model_id,
                                                  pack_ref=self.run.pack.ref, **ctx)
        return HTMLResponse(html, status_code=status)

    @staticmethod
    def red_teamer(request: Request) -> str | None:
        try:
            return check_red_teamer(request.cookies.get(RED_TEAMER_COOKIE, ""))
        except UsageError:
            return None

    def chat(self, who: str, conv_id: str, *, status: int = 200, error: RaipipeError | None = None,
             form: Mapping[str, str] | None = None, flagged: str = "") -> HTMLResponse:
        """The conversation page; after a failed post, with the error and what was typed kept."""
        conv = self.run.conversation(conv_id)
        notice = next((r for r in conv.flags if r.id == flagged), None) if flagged else None
        form = dict(form or {})
        if "turn" not in form and conv.turns:
            form["turn"] = str(len(conv.turns) - 1)
        focus = (error.field if error is not None and error.field in (*FLAG_FIELDS, "message") else "message")
        return self.render("chat.html.j2", status=status, who=who, conv=conv, policies=self.policies,
                           error=str(error) if error else "", form=form, notice=notice, focus=focus,
                           mine=conv.red_teamer == who)


def create_app(run: HumanRun) -> FastAPI:
    """The page over an open human red-team run."""
    # local: routes imports this module (import cycle)
    from raipipe.redteam.web.routes import add_chat_routes, add_session_routes

    page = Page(run)
    app = FastAPI(title="raipipe red teaming", docs_url=None, redoc_url=None)
    add_session_routes(app, page)
    add_chat_routes(app, page)
    return app


def serve(run: HumanRun, host: str = "127.0.0.1", port: int = 8766) -> None:
    """Run the page with uvicorn (local by default: the page has no login beyond a red-teamer id)."""
    import uvicorn

    uvicorn.run(create_app(run), host=host, port=port, log_level="info")
