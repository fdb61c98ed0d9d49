"""Structured output in a request: OpenAI's `response_format` and vLLM's `structured_outputs`
(`json`, `regex`, `choice`, `grammar`, `json_object`), declared, each turned into the engine's
one `StructuredOutput` constraint.

What a declared model can check is checked here (one constraint, a JSON Schema that is one);
what only the model's structured-output backend knows (a regex or grammar it cannot compile, a
schema feature it lacks) is checked by `Engine.check` before the request is admitted."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import Field, field_validator, model_validator

from app.engine.base import StructuredOutput
from app.validation import StrictModel

JsonSchema = dict[str, Any]


def _a_schema(schema: JsonSchema) -> JsonSchema:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    return schema


class JsonSchemaFormat(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    # `schema` in JSON; the attribute would shadow pydantic's own.
    schema_: JsonSchema | None = Field(default=None, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _check_schema(cls, schema: JsonSchema | None) -> JsonSchema | None:
        return schema if schema is None else _a_schema(schema)


class TextFormat(StrictModel):
    type: Literal["text"]


class JsonObjectFormat(StrictModel):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(StrictModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaResponseFormat,
                           Field(discriminator="type")]


class StructuredOutputs(StrictModel):
    """vLLM's `structured_outputs`: exactly one constraint."""

    json_: JsonSchema | str | None = Field(default=None, alias="json")
    json_object: Literal[True] | None = None
    regex: str | None = None  # vLLM compiles "" too (only the empty text matches)
    choice: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    grammar: Annotated[str, Field(min_length=1)] | None = None
    # vLLM 0.32's per-request `disable_any_whitespace`, `disable_additional_properties` and
    # `whitespace_pattern` are refused (unknown): its backends read only the server's config,
    # so they would be ignored silently.

    @field_validator("json_")
    @classmethod
    def _json_schema(cls, value: JsonSchema | str | None) -> JsonSchema | str | None:
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError("must be a JSON Schema (an object, or one as a JSON string)") \
                    from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON Schema object")
        return value if value is None else _a_schema(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        if len(self.model_fields_set & CONSTRAINTS) != 1:
            raise ValueError("set exactly one of 'json', 'json_object', 'regex', 'choice', "
                             "'grammar'")
        return self

    def constraint(self) -> StructuredOutput:
        (name,) = self.model_fields_set & CONSTRAINTS
        value: Any = getattr(self, name)
        if name == "json_":
            value = orjson.dumps(value if isinstance(value, dict) else orjson.loads(value)).decode()
        elif name == "choice":
            value = tuple(value)
        key = name.rstrip("_")
        return StructuredOutput(f"structured_outputs.{key}", **{key: value})


CONSTRAINTS = frozenset({"json_", "json_object", "regex", "choice", "grammar"})


def constraint(response_format: TextFormat | JsonObjectFormat | JsonSchemaResponseFormat | None,
               structured: StructuredOutputs | None) -> StructuredOutput | None:
    """The one constraint a request asks for, if any (the request model refuses both)."""
    if structured is not None:
        return structured.constraint()
    if isinstance(response_format, JsonSchemaResponseFormat):
        schema = response_format.json_schema.schema_
        if schema is None:  # OpenAI's schema is optional: then any JSON object
            return StructuredOutput("response_format", json_object=True)
        return StructuredOutput("response_format.json_schema.schema",
                                json=orjson.dumps(schema).decode())
    if isinstance(response_format, JsonObjectFormat):
        return StructuredOutput("response_format", json_object=True)
    return None
