"""The API's one error body, the handlers that produce it, and what routes document.

Every error answer, whichever part of the orchestrator refuses the request (a
route, the platform's lifecycle, input validation, the body size limit, a cap on
long-polls), has this body:

    {"detail": "what went wrong, for a person",
     "errors": [{"loc": ["body", "name"], "msg": "...", "type": "string_pattern_mismatch"}]}

`errors` comes only with a 422 for input that does not validate: one entry per
field, `loc` saying where (body, query, path, then the field's path). The input
itself is never echoed back.

Routes document the errors they answer with `responses=errors(404, 409)`; the
app's document gets what the app answers before or around a route
(document_common_errors): 422 (validation) on every operation with input, 400
(not UTF-8 text) and 413 (too large) on every operation with a body, 400 (a Host
not the server's) and 503 (the database cannot be reached) on every operation, and
409 (a lost race, still lost after retries: txretry.py) on every operation that
may write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="Where: body, query or path, then the field's path")
    msg: str = Field(description="What is wrong with it")
    type: str = Field(description="A stable code for the kind of error (pydantic's)")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="What went wrong, for a person")
    errors: list[FieldError] | None = Field(
        default=None, description="422 for input that does not validate: one entry per field"
    )


DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be carried out as asked",
    401: "Not signed in: wrong or missing credentials",
    403: "Not allowed for this user",
    404: "No such thing",
    409: "Conflicts with the current state",
    413: "The request body is larger than the server takes",
    422: "Invalid input",
    429: "Too many requests or waiters now; Retry-After says when to try again",
    503: "A part the request needs is not running",
}
MAX_FIELD_ERRORS = 20
"""At most this many field errors in one answer (a huge bad body yields a bounded one)."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers these error statuses."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def body(detail: str, field_errors: list[FieldError] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"detail": detail}
    if field_errors is not None:
        out["errors"] = [e.model_dump() for e in field_errors]
    return out


def _loc(parts: Any) -> list[str | int]:
    return [p if isinstance(p, int) and not isinstance(p, bool) else str(p) for p in parts]


def validation_body(problems: list[Any]) -> dict[str, Any]:
    """The 422 body for pydantic/FastAPI validation errors."""
    fields = [
        FieldError(loc=_loc(p.get("loc", ())), msg=str(p.get("msg", "")), type=str(p.get("type")))
        for p in problems[:MAX_FIELD_ERRORS]
        if isinstance(p, dict)
    ]
    shown = "; ".join(f"{'.'.join(map(str, f.loc))}: {f.msg}" for f in fields[:3])
    more = len(problems) - min(len(problems), 3)
    detail = f"invalid input: {shown}" + (f" (and {more} more)" if more else "")
    return body(detail, fields)


def invalid(
    fields: Mapping[tuple[str | int, ...], str], kind: str = "value_error"
) -> RequestValidationError:
    """Input that passes the schema but not the route's own checks (an unknown name,
    a descriptor's field): `fields` maps each field's `loc` to what is wrong with it.
    Raised, it is answered like FastAPI's own validation errors (422, validation_body)."""
    return RequestValidationError(
        [{"loc": loc, "msg": msg, "type": kind} for loc, msg in fields.items()]
    )


async def _validation(_r: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    return JSONResponse(status_code=422, content=validation_body(list(exc.errors())))


async def _http(_r: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # registered for this type only
        raise exc
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse(status_code=exc.status_code, content=body(detail), headers=exc.headers)


def install(app: FastAPI) -> None:
    """Answer validation errors and HTTP exceptions with ErrorBody."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)


def document_common_errors(app: FastAPI) -> None:
    """In the app's OpenAPI document: every error answer is application/json
    ErrorBody (also where the route's own answer is another type, as an event
    stream's), 422 (validation) where FastAPI documents its own body, the errors the
    app answers before a route runs (400 not UTF-8 text, 413 too large) on every
    operation with a request body, and around it (txretry.py): 503 on every
    operation, 409 on every one that may write."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _common_errors(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


REF = "#/components/schemas/"


def _common_errors(doc: dict[str, Any]) -> None:
    schema = ErrorBody.model_json_schema(ref_template=REF + "{model}")
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["ErrorBody"] = schema
    content = {"application/json": {"schema": {"$ref": REF + "ErrorBody"}}}
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            # 400 on every operation: a Host that is not the server's (limits.KnownHosts).
            common = [400, 503] if method in ("get", "head") else [400, 409, 503]
            if "requestBody" in op:
                # Before validation: a body that is not UTF-8 text is a 400 (FastAPI's).
                common += [413]
            for code in common:
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = content
            if "422" in responses:
                responses["422"]["description"] = DESCRIPTIONS[422]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
