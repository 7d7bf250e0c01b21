"""The OpenAI wire format: strict request models, response bodies and OpenAI-shaped errors."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from starlette.responses import JSONResponse

from sfdsl.chat_inputs import ChatMessage
from sfdsl.runtime.results import RunResult

ErrorType = Literal["invalid_request_error", "not_found_error", "rate_limit_error", "timeout_error", "server_error"]


class HTTPError(Exception):
    """A request that ends in an OpenAI-shaped error response."""

    def __init__(self, status: int, message: str, *, type: ErrorType = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "code", "param", ...}}``."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param,
                          **self.extra}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text holds an unpaired surrogate; send valid UTF-8") from None
    return text


class TextPart(BaseModel):
    """One text part of a message's content list."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: StrictStr


class MessageIn(BaseModel):
    """One chat message; content is a string or a list of text parts."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    @field_validator("content")
    @classmethod
    def _valid_text(cls, value: str | list[TextPart]) -> str | list[TextPart]:
        for text in [value] if isinstance(value, str) else [p.text for p in value]:
            _utf8(text)
        return value


class SfdslExtra(BaseModel):
    """The ``sfdsl`` field that ``extra_body={"sfdsl": {...}}`` adds to a request."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)


class _Common(BaseModel):
    """Fields both endpoints share; unknown OpenAI fields (top_p, user, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr = Field(min_length=1)
    stream: StrictBool = False
    n: StrictInt | None = None
    seed: StrictInt | None = None
    temperature: Annotated[StrictFloat | StrictInt, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    sfdsl: SfdslExtra | None = None

    def request_fields(self) -> dict[str, Any]:
        """Fields that map to same-named recipe inputs."""
        return {"n": self.n, "seed": self.seed, "temperature": self.temperature, "max_tokens": self.max_tokens}


class ChatRequest(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[MessageIn] = Field(min_length=1)

    def chat_messages(self) -> list[ChatMessage]:
        return [ChatMessage(role=m.role, content=m.text()) for m in self.messages]


class CompletionRequest(_Common):
    """``POST /v1/completions``: one prompt (a string, or a list holding one string)."""

    prompt: StrictStr | list[StrictStr]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("give one prompt (a string, or a list of one string)")
        _utf8(value if isinstance(value, str) else value[0])
        return value

    def chat_messages(self) -> list[ChatMessage]:
        return [ChatMessage(role="user", content=self.prompt if isinstance(self.prompt, str) else self.prompt[0])]


def parse_request(kind: type[ChatRequest] | type[CompletionRequest],
                  data: dict[str, Any]) -> ChatRequest | CompletionRequest:
    """Validate a request body; a 400 naming the first bad field otherwise."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise HTTPError(400, f"invalid field '{where}': {first['msg']}", code="invalid_field", param=where,
                        extra={"errors": len(exc.errors())}) from None


def answer_text(result: RunResult) -> str:
    """The text an OpenAI client reads: the answer, or why the recipe abstained."""
    if result.abstained:
        return f"(abstained: {result.reason or 'no reason given'})"
    if result.answer is None:
        return ""
    if isinstance(result.answer, (dict, list)):
        return json.dumps(result.answer, default=str)
    return str(result.answer)


def usage(result: RunResult) -> dict[str, int]:
    """Tokens of every model call in the run."""
    cost = result.cost
    return {"prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
            "total_tokens": cost.prompt_tokens + cost.completion_tokens}


def sfdsl_block(result: RunResult) -> dict[str, Any]:
    """What OpenAI's format has no place for: score, abstention, run id, the static bound and the cost."""
    return {"run_id": result.run_id, "recipe": result.recipe, "score": result.score, "abstained": result.abstained,
            "reason": result.reason, "bound": result.bound, "calls": result.cost.calls,
            "cached_calls": result.cost.cached_calls, "wall_s": round(result.cost.wall_s, 6)}


def chat_completion(result: RunResult, *, model: str) -> dict[str, Any]:
    """A ``chat.completion`` body."""
    return {"id": f"chatcmpl-{result.run_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": answer_text(result)}}],
            "usage": usage(result), "sfdsl": sfdsl_block(result)}


def text_completion(result: RunResult, *, model: str) -> dict[str, Any]:
    """A ``text_completion`` body."""
    return {"id": f"cmpl-{result.run_id}", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": answer_text(result), "finish_reason": "stop",
                                         "logprobs": None}],
            "usage": usage(result), "sfdsl": sfdsl_block(result)}
