"""The prompt file: a prompt version kept in the repository (``--phoenix-task=prompt-file:PATH``),
read and written out as Phoenix's REST API takes a version, and when two versions are the same.

The file is a prompt version as Phoenix's REST API writes one (``GET
/v1/prompts/{name}/latest`` gives one to start from), in YAML or JSON, with four shortcuts:
``messages`` for ``template: {type: chat, messages: ...}``; ``model`` and ``provider`` for
``model_name`` and ``model_provider``; ``invocation_parameters`` without their ``type`` (the
provider's family is put around them); ``tools`` as a list of OpenAI-style function tools.
What is pushed is the written-out form, which the server validates like any version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROMPT, PROMPT_FILE = "prompt:", "prompt-file:"
# What a prompt file may hold: a REST prompt version's fields, and the shortcuts.
VERSION_FIELDS = ("description", "metadata", "model_provider", "model_name", "template",
                  "template_type", "template_format", "invocation_parameters", "tools",
                  "response_format")
SHORTCUTS = {"messages": "template", "model": "model_name", "provider": "model_provider"}
ROLES = ("user", "assistant", "system", "developer", "tool", "ai", "model")
FORMATS = ("MUSTACHE", "F_STRING", "NONE")
# The providers the task's model can be called at from here (the judges' clients).
CALLABLE = ("OPENAI", "AZURE_OPENAI")
# The server's invocation parameter family of a provider (its "type"): "openai" for every
# OpenAI-compatible provider, Azure OpenAI included (``_expected_invocation_family`` in the
# server's input_types/PromptVersionInput.py).
FAMILIES = {"ANTHROPIC": "anthropic", "GOOGLE": "google", "AWS": "aws"}
# The older types of that family, which the server rewrites as "openai" on every write and read
# of a version (``normalize_invocation_parameters_for_write`` in phoenix/db/types/prompts.py),
# so that the playground only ever runs "openai" parameters: read the same way here.
LEGACY_OPENAI_TYPES = ("azure_openai", "deepseek", "xai", "ollama", "cerebras", "fireworks",
                       "groq", "moonshot", "perplexity", "together", "zai", "meta")
# What a prompt file may expand to once parsed: YAML aliases repeat what they point at, so a
# few hundred bytes can stand for gigabytes (an "alias bomb"), and an alias may even point at
# its own parent. The parsed value is walked once, every alias counted where it is used, and
# refused past these bounds, before anything is rendered, compared or pushed. A real prompt
# version is far inside them: the text bound is at least the file's own size.
MAX_NODES = 100_000  # values of every mapping and list, and the keys
MAX_TEXT = 1_000_000  # characters of every key and text, or the file's own size if more
MAX_DEPTH = 64  # mappings and lists inside one another


class FileError(ValueError):
    """A prompt file that is not a prompt version; the message names the key to fix."""


def read_prompt_file(path: Path) -> dict[str, Any]:
    """The prompt version a file holds, written out (FileError naming what to fix)."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FileError(f"not JSON: {exc}") from None
        else:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise FileError(f"not YAML: {exc}") from None
    except RecursionError:  # both parsers recurse once per level of nesting
        raise FileError(f"nests mappings and lists too deeply to read (a prompt version "
                        f"needs a few levels; at most {MAX_DEPTH})") from None
    check_size(data, max(MAX_TEXT, len(text)))
    return prompt_version(data)


def check_size(data: Any, max_text: int) -> None:
    """FileError when ``data`` expands to more than the bounds (:data:`MAX_NODES` values,
    ``max_text`` characters, :data:`MAX_DEPTH` levels), each alias counted where it is used.
    Iterative and stopping at the first bound passed, so that it costs at most the bound
    whatever the file stands for (a self-referencing alias included)."""
    nodes = text = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if isinstance(value, str):
            text += len(value)
        elif isinstance(value, (Mapping, list, tuple)):
            if depth > MAX_DEPTH:
                raise FileError(f"nests mappings and lists more than {MAX_DEPTH} deep, the "
                                f"bound of a prompt file (a prompt version needs a few "
                                f"levels); does a YAML alias (*name) point at its own parent?")
            items = [i for pair in value.items() for i in pair] \
                if isinstance(value, Mapping) else value
            stack += [(item, depth + 1) for item in items]
        if nodes > MAX_NODES or text > max_text:
            what = (f"more than {MAX_NODES:,} values" if nodes > MAX_NODES
                    else f"more than {max_text:,} characters of text")
            raise FileError(f"expands to {what}, the bound of a prompt file (YAML aliases, "
                            f"*name, repeat what their anchors hold, so a few hundred bytes "
                            f"can stand for gigabytes); write the prompt out without them")


def prompt_version(data: Any) -> dict[str, Any]:
    """A prompt file's content as a REST prompt version (the shortcuts written out)."""
    if not isinstance(data, Mapping):
        raise FileError(f"holds a {type(data).__name__}, not a mapping of a prompt version's "
                        f"fields ({', '.join(VERSION_FIELDS)})")
    unknown = sorted(set(map(str, data)) - set(VERSION_FIELDS) - set(SHORTCUTS))
    if unknown:
        raise FileError(f"unknown key(s) {', '.join(unknown)}; a prompt file holds "
                        f"{', '.join(VERSION_FIELDS)} (or the shortcuts "
                        f"{', '.join(SHORTCUTS)})")
    version: dict[str, Any] = {}
    for key, value in data.items():
        field = SHORTCUTS.get(str(key), str(key))
        if field in version:
            raise FileError(f"both {key!r} and {field!r} are given; keep one")
        version[field] = {"type": "chat", "messages": value} if key == "messages" else value
    template = version.get("template")
    if not isinstance(template, Mapping) or template.get("type") != "chat" or \
            not isinstance(template.get("messages"), list) or not template["messages"]:
        raise FileError("needs 'messages' (a list of {role, content}) or a chat 'template'")
    for index, message in enumerate(template["messages"]):
        _check_message(index, message)
    version["template_type"] = str(version.get("template_type") or "CHAT").upper()
    if version["template_type"] != "CHAT":
        raise FileError(f"template_type {version['template_type']!r}: only CHAT prompts run "
                        f"as a task")
    version["template_format"] = str(version.get("template_format") or "MUSTACHE").upper()
    if version["template_format"] not in FORMATS:
        raise FileError(f"template_format {version['template_format']!r} is not one of "
                        f"{', '.join(FORMATS)}")
    version["model_provider"] = str(version.get("model_provider") or "OPENAI").upper()
    if not isinstance(version.get("model_name"), str) or not version["model_name"]:
        raise FileError("needs 'model' (or model_name): the model the prompt is sent to")
    family = FAMILIES.get(version["model_provider"], "openai")
    parameters = version.get("invocation_parameters") or {}
    if not isinstance(parameters, Mapping):
        raise FileError("invocation_parameters must be a mapping, such as {temperature: 0}")
    if "type" not in parameters:
        parameters = {"type": family, family: dict(parameters)}
    version["invocation_parameters"] = openai_family(parameters)
    tools = version.get("tools")
    if isinstance(tools, list):
        version["tools"] = {"type": "tools", "tools": tools}
    elif tools is not None and not isinstance(tools, Mapping):
        raise FileError("tools must be a list of function tools or Phoenix's {type: tools, "
                        "tools: [...]}")
    for key in ("tools", "response_format", "description"):
        if version.get(key) is None:
            version.pop(key, None)
    return version


def openai_family(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Invocation parameters as the server keeps them: an older OpenAI-family type
    (``azure_openai``, ``deepseek``, ...) becomes ``openai`` with the same values."""
    kind = parameters.get("type")
    if kind in LEGACY_OPENAI_TYPES and isinstance(parameters.get(kind), Mapping):
        return {"type": "openai", "openai": dict(parameters[kind])}
    return dict(parameters)


def _check_message(index: int, message: Any) -> None:
    where = f"message {index + 1}"
    if not isinstance(message, Mapping):
        raise FileError(f"{where} is a {type(message).__name__}, not {{role, content}}")
    role = str(message.get("role", "")).lower()
    if role not in ROLES:
        raise FileError(f"{where}: role {message.get('role')!r} is not one of "
                        f"{', '.join(ROLES)}")
    content = message.get("content")
    if not isinstance(content, (str, list)):
        raise FileError(f"{where}: content must be text or a list of parts")


# The fields that make two versions the same prompt run (not their description or metadata).
_COMPARED = ("model_provider", "model_name", "template", "template_format",
             "invocation_parameters", "tools", "response_format")


def same_version(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two prompt versions send the same requests (a pushed file equal to the latest
    version makes no new one)."""
    def norm(version: Mapping[str, Any], key: str) -> Any:
        value = version.get(key)
        if key == "template" and isinstance(value, Mapping):
            return {"type": value.get("type"), "messages": [_norm_message(m)
                                                            for m in value.get("messages") or ()]}
        if key == "invocation_parameters" and isinstance(value, Mapping):
            return openai_family(value) or None
        return value or None

    return all(norm(a, key) == norm(b, key) for key in _COMPARED)


def _norm_message(message: Mapping[str, Any]) -> Any:
    content = message.get("content")
    if isinstance(content, list) and len(content) == 1 and \
            isinstance(content[0], Mapping) and content[0].get("type") == "text":
        content = content[0].get("text")  # the server may keep a lone text part either way
    return {"role": str(message.get("role")).lower(), "content": content}


def shown_path(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)

