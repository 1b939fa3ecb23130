"""A prompt as the task under test: ``--phoenix-task=prompt:NAME[@TAG|@VERSION_ID]`` (Phoenix
prompt management) or ``prompt-file:PATH`` (a prompt version kept in the repository), loaded and
checked before anything runs; at the end ``--phoenix-push-prompt`` saves the file as a version
and ``--phoenix-promote-tag`` moves a tag to the version under test, when it earned it.

The run itself is pytest-free (:class:`~pytest_phoenix_evals._run.prompt_task.PromptTask`).

The prompt file is a prompt version as Phoenix's REST API writes one (``GET
/v1/prompts/{name}/latest`` gives one to start from), in YAML or JSON, with four shortcuts:
``messages`` for ``template: {type: chat, messages: ...}``; ``model`` and ``provider`` for
``model_name`` and ``model_provider``; ``invocation_parameters`` without their ``type`` (the
provider's family is put around them); ``tools`` as a list of OpenAI-style function tools.
What it pushes is the written-out form, which the server validates like any version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._core.types import Group
    from ._run.prompt_task import PromptTask
    from ._session import PhoenixEvalsSession

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
# The server's invocation parameter family of a provider (its "type").
FAMILIES = {"OPENAI": "openai", "AZURE_OPENAI": "azure_openai", "ANTHROPIC": "anthropic",
            "GOOGLE": "google", "DEEPSEEK": "deepseek", "XAI": "xai", "OLLAMA": "ollama",
            "AWS": "aws"}


class FileError(ValueError):
    """A prompt file that is not a prompt version; the message names the key to fix."""


def read_prompt_file(path: Path) -> dict[str, Any]:
    """The prompt version a file holds, written out (FileError naming what to fix)."""
    text = path.read_text(encoding="utf-8")
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
    return prompt_version(data)


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
    family = FAMILIES.get(version["model_provider"], version["model_provider"].lower())
    parameters = version.get("invocation_parameters") or {}
    if not isinstance(parameters, Mapping):
        raise FileError("invocation_parameters must be a mapping, such as {temperature: 0}")
    if "type" not in parameters:
        parameters = {"type": family, family: dict(parameters)}
    version["invocation_parameters"] = dict(parameters)
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


class PromptUnderTest:
    """The prompt the session runs as its task, what the experiment says of it, and what is
    done with it at the end."""

    def __init__(self, session: PhoenixEvalsSession) -> None:
        self.session = session
        spec = str(session.settings.task)
        self.spec = spec
        self.name: str | None = None  # the prompt's name in Phoenix (a prompt: task)
        self.ref: str | None = None
        self.file: Path | None = None
        self.version: dict[str, Any] = {}  # the version run (as REST gives or takes it)
        if spec.startswith(PROMPT_FILE):
            self._from_file(spec.removeprefix(PROMPT_FILE))
        else:
            self._from_phoenix(spec.removeprefix(PROMPT))
        self.task = self._task()
        self._checked: set[str] = set()
        self.baseline_version: tuple[str, str, str] | None = None  # --phoenix-baseline=prompt:

    def _from_phoenix(self, reference: str) -> None:
        from ._phoenix.http import PhoenixError

        name, _, ref = reference.partition("@")
        self.name, self.ref = name, ref or None
        try:
            self.version = self.session.gateway.find_prompt_version(name, ref or None)
        except PhoenixError as exc:
            raise pytest.UsageError(f"--phoenix-task {self.spec}: {exc}") from None

    def _from_file(self, given: str) -> None:
        path = Path(given)
        if not path.is_absolute():
            found = [p for p in (self.session.rootpath / path, Path.cwd() / path) if p.is_file()]
            path = found[0] if found else self.session.rootpath / path
        self.file = path
        try:
            self.version = read_prompt_file(path)
        except OSError as exc:
            raise pytest.UsageError(f"--phoenix-task {self.spec}: cannot read {path}: "
                                    f"{exc.strerror or exc}") from None
        except FileError as exc:
            raise pytest.UsageError(f"--phoenix-task {self.spec}: {path}: {exc}") from None

    def _task(self) -> PromptTask:
        from ._evaluators.llm.client import JudgeError, Judges
        from ._evaluators.llm.judge import PromptSpec
        from ._evaluators.templates import TemplateError
        from ._run.prompt_task import PromptTask

        settings = self.session.settings
        label = self.name or (self.file.name if self.file else "prompt")
        try:
            prompt = PromptSpec.from_phoenix(label, {**self.version, "id": self.version_id})
        except ValueError:
            raise pytest.UsageError(
                f"--phoenix-task {self.spec}: the version has a "
                f"{(self.version.get('template') or {}).get('type')!r} template; only chat "
                f"prompts run as a task") from None
        provider = (prompt.model_provider or "OPENAI").upper()
        if provider not in CALLABLE:
            raise pytest.UsageError(
                f"--phoenix-task {self.spec}: the prompt's model provider is {provider}; a "
                f"prompt runs here through the openai client, so only OpenAI, Azure OpenAI and "
                f"OpenAI-compatible servers (OPENAI with OPENAI_BASE_URL) can be called")
        # The task's own clients: its own cap (the cases at once), retries and timeout as the
        # judges', none of the judges' model, endpoint or budget.
        models = Judges(settings.judge._replace(model=None, base_url=None, budget_usd=None,
                                                concurrency=settings.concurrency),
                        role="task's model")
        try:
            models.endpoint(provider)
        except JudgeError as exc:
            raise pytest.UsageError(f"--phoenix-task {self.spec}: the prompt's model cannot be "
                                    f"called: {exc}") from None
        if settings.cache:  # (never with repetitions: the options refuse the two together)
            models.cache = self.session.judges.cache
        task = PromptTask(label=self.spec, prompt=prompt, models=models,
                          variables_path=settings.prompt_variables,
                          messages_path=settings.prompt_messages)
        try:
            task.template_names()
        except TemplateError as exc:
            raise pytest.UsageError(f"--phoenix-task {self.spec}: the template does not parse "
                                    f"as {prompt.template_format}: {exc}") from None
        return task

    @property
    def version_id(self) -> str | None:
        return self.version.get("id")

    def check(self, group: Group) -> None:
        """Every example of the group can fill the template (else a usage error naming the
        variable and the example's keys, before anything runs)."""
        if group.key in self._checked or group.kind != "dataset":
            return
        self._checked.add(group.key)
        examples = self.session.source.dataset(group).examples
        problems = [(example.id, problem) for example in examples
                    if (problem := self.task.problem(example)) is not None]
        if not problems:
            return
        shown = "; ".join(f"example {example_id}: {problem}"
                          for example_id, problem in problems[:3])
        more = f" (and {len(problems) - 3} more examples)" if len(problems) > 3 else ""
        raise pytest.UsageError(
            f"--phoenix-task {self.spec}: {len(problems)} of {len(examples)} examples of "
            f"{group.label} cannot fill the prompt: {shown}{more}. Rename the variables, or "
            f"point --phoenix-prompt-variables at the part of the example that holds them "
            f"(now {self.task.variables_path or '.'!r})")

    def metadata(self) -> dict[str, Any]:
        """What the experiment records of its task (the server cannot store a task config
        for an experiment made over REST; see docs/prompt-iteration.md)."""
        found: dict[str, Any] = {"kind": "prompt", "model_provider": self.task.prompt.
                                 model_provider, "model_name": self.task.model,
                                 "template_variables_path": self.task.variables_path}
        if self.name:
            found.update(prompt=self.name, prompt_version_id=self.version_id)
            if self.ref:
                found["ref"] = self.ref
        if self.file is not None:
            found["file"] = _shown_path(self.file, self.session.rootpath)
        if self.task.messages_path:
            found["appended_messages_path"] = self.task.messages_path
        return {"task": found}

    def baseline_spec(self, tag: str) -> str:
        """--phoenix-baseline=prompt:TAG: the experiments that ran the version of the prompt
        under test carrying TAG (a usage error when there is no such version)."""
        from ._phoenix.http import PhoenixError

        name = self.name or self.session.settings.push_prompt
        if not name:
            raise pytest.UsageError(
                f"--phoenix-baseline=prompt:{tag}: a prompt file has no prompt in Phoenix to "
                f"take the version tagged {tag!r} of: add --phoenix-push-prompt=NAME")
        try:
            version = self.session.gateway.find_prompt_version(name, tag)
        except PhoenixError as exc:
            raise pytest.UsageError(f"--phoenix-baseline=prompt:{tag}: {exc}") from None
        self.baseline_version = (name, tag, str(version["id"]))
        return f"prompt-version:{version['id']}"

    async def aclose(self) -> None:
        await self.task.models.aclose()

    # --- the end: push and promote ---------------------------------------------------------

    def finish(self, passed: bool | None) -> list[str]:
        """--phoenix-push-prompt and --phoenix-promote-tag: the lines that say what was done,
        or why not."""
        settings = self.session.settings
        wanted = [f"--phoenix-{flag}={value}" for flag, value in (
            ("push-prompt", settings.push_prompt), ("promote-tag", settings.promote_tag))
            if value]
        if not wanted:
            return []
        why = promotion_blockers(self.session, passed)
        if self.file is not None and settings.promote_tag and not settings.push_prompt:
            why.append("a prompt file has no version in Phoenix to carry a tag: add "
                       "--phoenix-push-prompt=NAME")
        if why:
            return [f"{' and '.join(wanted)}: nothing done: {'; '.join(why)}"]
        from ._phoenix.http import PhoenixError

        gateway = self.session.gateway.reopened()  # the session's clients are closed by now
        lines: list[str] = []
        try:
            name, version_id = self.name, self.version_id
            if settings.push_prompt:
                name = settings.push_prompt
                version_id, line = self._push(gateway, name)
                lines.append(line)
            if settings.promote_tag and name and version_id:
                lines.append(move_tag(gateway, name, version_id, settings.promote_tag,
                                      f"promoted by pytest-phoenix-evals: {self.spec} passed "
                                      f"its gates"))
        except PhoenixError as exc:
            lines.append(f"{' and '.join(wanted)}: failed: {exc}")
            self.session.promotion_failed = True
        finally:
            gateway.close()
        return lines

    def _push(self, gateway: Any, name: str) -> tuple[str, str]:
        from ._phoenix.http import PhoenixError

        shown = _shown_path(self.file, self.session.rootpath) if self.file else self.spec
        try:
            latest = gateway.find_prompt_version(name, None)
        except PhoenixError:
            latest = None  # no such prompt yet: the push makes it
        if latest is not None and same_version(latest, self.version):
            return str(latest["id"]), (f"prompt {name!r}: its latest version {latest['id']} "
                                        f"is already {shown}; no version pushed")
        try:
            created = gateway.push_prompt_version(name, self.version)
        except PhoenixError as exc:
            # The answer may have been lost after the server made the version: look, once.
            try:
                after = gateway.find_prompt_version(name, None)
            except PhoenixError:
                raise exc from None
            made = (latest is None or after.get("id") != latest.get("id")) and \
                same_version(after, self.version)
            if not made:
                raise exc from None
            created = after
        return str(created["id"]), (f"pushed: {shown} is now version {created['id']} of "
                                    f"prompt {name!r}")



def promotion_blockers(session: PhoenixEvalsSession, passed: bool | None) -> list[str]:
    """Why no prompt version may be pushed or promoted on this session's evidence (none when
    it may): the rule for a judged prompt and a prompt under test alike."""
    why = []
    if not session.settings.gates:
        why.append("no --phoenix-fail-under gate was set, so nothing vouches for it")
    elif not passed:
        why.append("a gate failed")
    if session.at_risk():
        why.append("not every result is in Phoenix")
    return why


def move_tag(gateway: Any, name: str, version_id: str, tag: str, description: str) -> str:
    """Put ``tag`` of prompt ``name`` on ``version_id`` (nothing when it is there already); the
    summary line saying so. PhoenixError when the server refuses."""
    before = gateway.prompt_version(name, tag=tag)
    if before is not None and before.get("id") == version_id:
        return f"prompt {name!r} version {version_id} already carries tag {tag!r}"
    gateway.tag_prompt_version(version_id, tag, description)
    return (f"promoted: prompt {name!r} version {version_id} now carries tag {tag!r}"
            + (f" (before: version {before['id']})" if before else
               " (no version carried it before)"))


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
        return value or None

    return all(norm(a, key) == norm(b, key) for key in _COMPARED)


def _norm_message(message: Mapping[str, Any]) -> Any:
    content = message.get("content")
    if isinstance(content, list) and len(content) == 1 and \
            isinstance(content[0], Mapping) and content[0].get("type") == "text":
        content = content[0].get("text")  # the server may keep a lone text part either way
    return {"role": str(message.get("role")).lower(), "content": content}


def _shown_path(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)

