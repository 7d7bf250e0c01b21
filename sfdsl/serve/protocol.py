"""The OpenAI wire format: strict request models, response bodies and OpenAI-shaped errors."""

from __future__ import annotations

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
    ValidationInfo,
    field_validator,
    model_validator,
)
from starlette.responses import JSONResponse

from sfdsl.agent_values import FunctionCall, Message, MessageToolCall, ToolSpec
from sfdsl.chat_replies import chat_reply, openai_message, sfdsl_object, usage
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


class FunctionIn(BaseModel):
    """The function of a tool call in an assistant message."""

    model_config = ConfigDict(extra="ignore")

    name: StrictStr
    arguments: StrictStr = "{}"


class ToolCallIn(BaseModel):
    """A tool call in an assistant message (as the client got it back)."""

    model_config = ConfigDict(extra="ignore")

    id: StrictStr
    type: Literal["function"] = "function"
    function: FunctionIn


class MessageIn(BaseModel):
    """One chat message; content is a string or a list of text parts (null for an assistant's tool calls)."""

    model_config = ConfigDict(extra="ignore")  # echoed assistant messages carry e.g. refusal and annotations

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: StrictStr | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            kinds = sorted({repr(p.get("type")) for p in value if isinstance(p, dict) and p.get("type") != "text"})
            if kinds:
                raise ValueError(f"only text content parts are supported, not {', '.join(kinds)}")
        return value

    @field_validator("content")
    @classmethod
    def _valid_text(cls, value: str | list[TextPart] | None) -> str | list[TextPart] | None:
        for text in [] if value is None else [value] if isinstance(value, str) else [p.text for p in value]:
            _utf8(text)
        return value

    @model_validator(mode="after")
    def _complete(self) -> MessageIn:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        return self

    def message(self) -> Message:
        """The message as an sfdsl conversation turn."""
        calls = None if not self.tool_calls else [
            MessageToolCall(id=c.id, function=FunctionCall(name=c.function.name, arguments=c.function.arguments))
            for c in self.tool_calls]
        return Message(role=self.role, content=None if self.content is None else self.text(), name=self.name,
                       tool_calls=calls, tool_call_id=self.tool_call_id)


class SfdslExtra(BaseModel):
    """The ``sfdsl`` field that ``extra_body={"sfdsl": {...}}`` adds to a request."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk with usage and no choices."""

    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False
    include_obfuscation: StrictBool | None = None  # nothing here is obfuscated, so there is nothing to turn off


class JsonSchemaFormat(BaseModel):
    """``response_format.json_schema``."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    description: StrictStr | None = None
    strict: StrictBool | None = None


class ResponseFormat(BaseModel):
    """``response_format``: text, or JSON output (any object, or one matching a JSON Schema)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _json_schema_given(self) -> ResponseFormat:
        self.schema_input()  # here, so that a missing json_schema is a 400 naming 'response_format'
        return self

    def schema_input(self) -> dict[str, Any] | None:
        """The JSON Schema a recipe's ``schema`` input gets; None for plain text."""
        if self.type == "text":
            return None
        if self.type == "json_object":
            return {"type": "object"}
        if self.json_schema is None:
            raise ValueError("a json_schema response format needs 'json_schema'")
        return self.json_schema.schema_


#: OpenAI parameters sfdsl recognises but cannot honour: any value other than "absent" is a 400.
UNSUPPORTED = ("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity", "functions",
               "function_call", "logit_bias", "top_logprobs", "modalities", "echo", "suffix", "best_of")
#: Values that ask for nothing beyond the default, so any recipe honours them.
NO_OPS: dict[str, tuple[Any, ...]] = {"n": (1,), "top_p": (1, 1.0), "presence_penalty": (0, 0.0),
                                      "frequency_penalty": (0, 0.0), "logprobs": (False,),
                                      "parallel_tool_calls": (True,)}


class _Common(BaseModel):
    """Fields both endpoints share. Every OpenAI field is declared; an unknown one is a 400 (as at OpenAI)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: StrictStr = Field(min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt | None = None
    seed: StrictInt | None = None
    temperature: Annotated[StrictFloat | StrictInt, Field(ge=0, le=2)] | None = None
    top_p: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=4)] | None = None
    presence_penalty: Annotated[StrictFloat | StrictInt, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[StrictFloat | StrictInt, Field(ge=-2, le=2)] | None = None
    logprobs: Any = None
    user: StrictStr | None = None
    metadata: dict[str, StrictStr] | None = None
    store: StrictBool | None = None
    service_tier: StrictStr | None = None
    safety_identifier: StrictStr | None = None
    prompt_cache_key: StrictStr | None = None
    sfdsl: SfdslExtra | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in UNSUPPORTED:
                if data.get(name) not in (None, [], {}, ["text"]):
                    raise UnsupportedField(name)
        return data

    def max_answer_tokens(self) -> int | None:
        """``max_completion_tokens``, else the older ``max_tokens``."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def request_fields(self) -> dict[str, Any]:
        """Fields that map to recipe inputs (``sfdsl.chat_inputs``); absent and no-op values are left out."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop  # OpenAI takes one string or a list
        fields = {"n": self.n, "seed": self.seed, "temperature": self.temperature, "top_p": self.top_p,
                  "max_tokens": self.max_answer_tokens(), "stop": stop,
                  "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
                  "logprobs": self.logprobs or None}
        return {k: v for k, v in fields.items() if v is not None and v not in NO_OPS.get(k, ())}


class UnsupportedField(ValueError):
    """A request field sfdsl cannot honour (raised inside validation, answered as a 400 naming it)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' is not supported by sfdsl recipes")
        self.name = name


class ChatRequest(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[MessageIn] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: ResponseFormat | None = None
    logprobs: StrictBool | None = None

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_needs_tools(cls, choice: str | dict[str, Any] | None,
                                 info: ValidationInfo) -> str | dict[str, Any] | None:
        if choice is not None and not info.data.get("tools") and choice != "none":
            raise ValueError("'tool_choice' is only allowed when 'tools' are given")
        return choice

    def chat_messages(self) -> list[Message]:
        return [m.message() for m in self.messages]

    def request_fields(self) -> dict[str, Any]:
        fields = super().request_fields()
        if self.tools:
            fields["tools"] = [t.model_dump(exclude_none=True) for t in self.tools]
            fields["tool_choice"] = tool_choice_name(self.tool_choice)
        if self.parallel_tool_calls is not None and self.parallel_tool_calls not in NO_OPS["parallel_tool_calls"]:
            fields["parallel_tool_calls"] = self.parallel_tool_calls
        if self.response_format is not None and self.response_format.schema_input() is not None:
            fields["response_format"] = self.response_format.schema_input()
        return fields


def tool_choice_name(choice: str | dict[str, Any] | None) -> str | None:
    """OpenAI's ``tool_choice`` as the recipe's ``tool_choice`` text: auto, required, none or a tool's name."""
    if choice is None or choice == "auto":
        return None
    if isinstance(choice, str):
        if choice not in ("required", "none"):
            raise ValueError(f"'tool_choice' must be auto, required, none or a function, got {choice!r}")
        return choice
    name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
    if not isinstance(name, str):
        raise ValueError("'tool_choice' names a function as {\"type\": \"function\", \"function\": {\"name\": ...}}")
    return name


class CompletionRequest(_Common):
    """``POST /v1/completions``: one prompt (a string, or a list holding one string)."""

    prompt: StrictStr | list[StrictStr]
    logprobs: StrictInt | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("give one prompt (a string, or a list of one string)")
        _utf8(value if isinstance(value, str) else value[0])
        return value

    def chat_messages(self) -> list[Message]:
        return [Message(role="user", content=self.prompt if isinstance(self.prompt, str) else self.prompt[0])]


def parse_request(kind: type[ChatRequest] | type[CompletionRequest],
                  data: dict[str, Any]) -> ChatRequest | CompletionRequest:
    """Validate a request body; a 400 naming the first bad field otherwise."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        unsupported = (first.get("ctx") or {}).get("error")
        if isinstance(unsupported, UnsupportedField):
            raise unsupported_parameter(unsupported.name, str(unsupported)) from None
        where = ".".join(str(part) for part in _field_path(first, exc.errors())) or "body"
        if first["type"] == "extra_forbidden":
            raise HTTPError(400, f"unrecognized request argument supplied: {where}", code="unknown_parameter",
                            param=where) from None
        message = first["msg"].removeprefix("Value error, ")
        raise HTTPError(400, f"invalid field '{where}': {message}", code="invalid_field", param=where,
                        extra={"errors": len(exc.errors())}) from None


def _field_path(error: Any, errors: list[Any]) -> tuple[Any, ...]:
    """The error's location without a union member's tag (``temperature``, not ``temperature.float``).

    pydantic reports one error per member of a union, each located at the field plus the member's tag;
    they share the field's location and input and differ only in that last part.
    """
    loc = tuple(error["loc"])
    union = any(len(e["loc"]) == len(loc) and tuple(e["loc"][:-1]) == loc[:-1] and e["loc"][-1] != loc[-1]
                and e.get("input") == error.get("input") for e in errors)
    return loc[:-1] if union and isinstance(loc[-1], str) else loc


def unsupported_parameter(param: str, message: str) -> HTTPError:
    """The 400 for a parameter that cannot be honoured."""
    return HTTPError(400, message, code="unsupported_parameter", param=param)


def chat_completion(result: RunResult, *, model: str) -> dict[str, Any]:
    """A ``chat.completion`` body (the reply mapped by ``sfdsl.chat_replies``)."""
    reply = chat_reply(result)
    return {"id": f"chatcmpl-{result.run_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                                         "message": openai_message(reply)}],
            "usage": usage(result), "sfdsl": sfdsl_object(result)}


def text_completion(result: RunResult, *, model: str) -> dict[str, Any]:
    """A ``text_completion`` body: the reply's one text (it says so when the recipe declined or had no answer)."""
    reply = chat_reply(result)
    return {"id": f"cmpl-{result.run_id}", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": reply.text, "finish_reason": reply.finish_reason,
                                         "logprobs": None}],
            "usage": usage(result), "sfdsl": sfdsl_object(result)}
