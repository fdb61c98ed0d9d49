"""`tool_choice: "auto"`: the model decides, and vLLM's tool-call parser for its format
(`STREAMCHAT_TOOL_CALL_PARSER`) reads its reply: text stays content, calls become OpenAI tool
calls. Streamed, the parser's `extract_tool_calls_streaming` is fed each piece; whole, its
`extract_tool_calls` reads the text at once, as vLLM's server does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.api.openai.tool_calls import Piece, call_id

if TYPE_CHECKING:
    from app.api.http.state import Services
    from app.api.openai.schemas import ChatCompletionRequest


class ParserReader:
    """One choice's reply through one parser instance (parsers keep a reply's state)."""

    def __init__(self, parser: Any, request: Any) -> None:
        self._parser = parser
        self._request = request  # vLLM's ChatCompletionRequest: parsers read its tools
        self._text = ""
        self._opened: set[int] = set()
        self.calls = 0

    def feed(self, text: str) -> list[Piece]:
        if not text:
            return []
        previous, self._text = self._text, self._text + text
        delta = self._parser.extract_tool_calls_streaming(previous, self._text, text, [], [],
                                                          [], self._request)
        if delta is None:
            return []
        pieces: list[Piece] = [{"content": delta.content}] if delta.content else []
        for call in delta.tool_calls or []:
            function = call.function
            if call.index not in self._opened and function is not None and function.name:
                # OpenAI's first delta of a call: its id, name and empty arguments.
                self._opened.add(call.index)
                self.calls += 1
                pieces.append({"tool_calls": [{
                    "index": call.index, "id": call_id(), "type": "function",
                    "function": {"name": function.name, "arguments": ""}}]})
            if call.index in self._opened and function is not None and function.arguments:
                pieces.append({"tool_calls": [{"index": call.index,
                                               "function": {"arguments": function.arguments}}]})
        return pieces

    def message(self, text: str) -> dict[str, Any]:
        info = self._parser.extract_tool_calls(text, self._request)
        if not info.tools_called:
            return {"content": text}
        self.calls = len(info.tool_calls)
        return {"content": info.content or None, "tool_calls": [
            {"id": call_id(), "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}
            for call in info.tool_calls]}


def vllm_request(model: str, tools: list[dict[str, Any]]) -> Any:
    """What a parser reads of the request: vLLM's own request type, with the tools."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest.model_validate({
        "model": model, "messages": [{"role": "user", "content": ""}], "tools": tools,
        "tool_choice": "auto"})


def auto_reader(svc: Services, req: ChatCompletionRequest, model: str) -> ParserReader:
    """A reader of one choice for `tool_choice: auto`: the configured parser, new each time."""
    assert svc.settings.tool_call_parser is not None  # validation refuses auto without one
    tools = req.template_tools() or []
    return ParserReader(svc.engine.tool_parser(svc.settings.tool_call_parser, tools),
                        vllm_request(model, tools))
