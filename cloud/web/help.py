"""The UI's help link: the user guides of ``docs/vi/`` (one per role) and their screenshots.

The guides are Markdown files in the repository, read here as they are (``web.docs_dir``),
so the guide a user opens from the UI is the one in the repository, screenshots included.
Raw HTML in them is not rendered.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from markdown_it import MarkdownIt

from cloud.auth.deps import require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Role
from cloud.web.pages import render

Anyone = Annotated[Principal, Depends(require())]
#: Guide of each role, the first that applies (an admin reads the technician's).
GUIDES: Final = (
    (Role.TECHNICIAN, "technician"),
    (Role.ADMIN, "technician"),
    (Role.POLICE, "police"),
    (Role.MIC, "mic"),
)
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,80}\.(png|jpg)$")
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def guide_of(p: Principal) -> str:
    return next((name for role, name in GUIDES if role in p.roles), "technician")


def help_router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    def docs(request: Request) -> Path:
        return services(request).cfg.web.docs_dir

    @r.get("/help")
    async def help_home(p: Anyone) -> Response:
        return RedirectResponse(f"/help/vi/{guide_of(p)}", status_code=303)

    @r.get("/help/vi/{name}")
    async def guide(request: Request, p: Anyone, name: str) -> Response:
        name = name.removesuffix(".md")
        path = docs(request) / "vi" / f"{name}.md"
        if not _NAME.match(name) or not path.is_file():
            raise HTTPException(404, f"no guide {name!r}")
        body = _md.render(path.read_text(encoding="utf-8"))
        # Links between the guides and to the screenshots resolve as in the repository.
        body = re.sub(r'href="([a-z0-9-]+)\.md(#[^"]*)?"', r'href="\1\2"', body)
        return render(request, "help.html", p, body=body, guide=name)

    @r.get("/help/screenshots/{name}")
    async def screenshot(request: Request, _p: Anyone, name: str) -> Response:
        path = docs(request) / "screenshots" / name
        if not _IMAGE.match(name) or not path.is_file():
            raise HTTPException(404, f"no screenshot {name!r}")
        return FileResponse(path, media_type="image/png" if name.endswith(".png") else "image/jpeg")

    return r
