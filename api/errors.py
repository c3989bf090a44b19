"""The API's one error shape, its handlers, and how the OpenAPI document declares it.

Every error answer is JSON ``{"error": <stable code>, "message": <what is wrong>, ...}``;
answers that say more (a refused batch's per-event detail) add fields, never rename these.
Routers declare their error statuses from the constants here, so the document names one model.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

Responses = dict[int | str, dict[str, Any]]

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_request",
    503: "unavailable",
}


class Problem(BaseModel):
    where: str = Field(description="The parameter at fault, e.g. `query.window`")
    message: str


class ErrorBody(BaseModel):
    """Any error answer: a stable code for programs, a sentence for people."""

    error: str = Field(description="Stable code, e.g. `not_found`, `invalid_request`")
    message: str = Field(description="What is wrong, in a sentence")
    problems: list[Problem] | None = Field(
        default=None, description="`invalid_request`: each parameter at fault"
    )


class EventRefusal(BaseModel):
    index: int | None = Field(description="Position in the body (null: the body as a whole)")
    reason: str = Field(description="Low-cardinality code, as in the dead-letter topic")
    detail: str


class IngestRefusalBody(ErrorBody):
    """``POST /v1/events`` with refused events: the valid ones of the batch were accepted."""

    accepted: int = Field(description="Events of the batch published")
    rejected: int = Field(description="Events refused (sent to the dead-letter topic)")
    errors: list[EventRefusal]


def error_response(description: str, model: type[ErrorBody] = ErrorBody) -> dict[str, Any]:
    return {"model": model, "description": description}


AUTH: Responses = {
    401: error_response("No bearer token, or one that is not valid (`unauthorized`)"),
    403: error_response("The token lacks the route's scope (`forbidden`)"),
}
INVALID: Responses = {422: error_response("A parameter is not valid (`invalid_request`)")}
NOT_FOUND: Responses = {404: error_response("No such resource (`not_found`)")}
TOO_LARGE: Responses = {413: error_response("Body larger than the limit (`payload_too_large`)")}
UNAVAILABLE: Responses = {503: error_response("Kafka unavailable: nothing accepted")}


def install_error_shape(app: FastAPI) -> None:
    """Every error is JSON: ``{"error": <code>, "message": <what is wrong>, ...}``."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": CODES.get(exc.status_code, "error"), "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        message = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
        return JSONResponse(
            {"error": "invalid_request", "message": message, "problems": problems}, status_code=422
        )


def _problem(error: Any) -> dict[str, str]:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return {"where": where, "message": str(error.get("msg", "invalid"))}


class PayloadRefusal(BaseModel):
    index: int | None = Field(description="Position of the payload in the body")
    reason: str
    problems: list[str]


class WebhookRefusalBody(ErrorBody):
    """A webhook with refused payloads (`unmappable`): the mapped ones were published."""

    inputs: int
    events: int
    skipped: dict[str, int]
    refused: list[PayloadRefusal]


def install_json_error_docs(app: FastAPI) -> None:
    """Error answers are JSON even where success is not (the wallboard's HTML): FastAPI files
    a route's extra responses under the route's own media type, so the document is fixed once."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for operations in generate()["paths"].values():
                for operation in operations.values():
                    _errors_as_json(operation.get("responses", {}))
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _errors_as_json(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        content = response.get("content", {})
        if status[:1] in ("4", "5") and content and "application/json" not in content:
            response["content"] = {"application/json": next(iter(content.values()))}
