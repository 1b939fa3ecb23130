"""The prompt task: a dataset run whose task is a prompt, ``--phoenix-task=prompt:NAME[@TAG|
@VERSION_ID]`` (Phoenix prompt management) or ``prompt-file:PATH`` (a file, see
:mod:`.prompt_file`), run as the playground runs it over a dataset. Loaded and checked against
every example before anything runs; at the end ``--phoenix-push-prompt`` saves the file as a
version and ``--phoenix-promote-tag`` moves a tag to the version under test, when it earned it.

The run itself is :class:`~.._run.prompt_task.PromptTask`. pytest-free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.errors import UsageProblem
from .dataset import DatasetRun
from .prompt_file import (
    CALLABLE,
    PROMPT,
    PROMPT_FILE,
    FileError,
    read_prompt_file,
    same_version,
    shown_path,
)

if TYPE_CHECKING:
    from .._core.types import Group
    from .._run.prompt_task import PromptTask
    from .context import Context
    from .outcome import Outcome


class PromptTaskRun(DatasetRun):
    """A dataset run whose task is the prompt under test."""

    name: ClassVar[str] = "prompt task"

    def __init__(self, ctx: Context, outcome: Outcome, **parts: Any) -> None:
        super().__init__(ctx, outcome, **parts)
        self._prompt: PromptUnderTest | None = None

    @property
    def prompt(self) -> PromptUnderTest:
        if self._prompt is None:
            self._prompt = PromptUnderTest(self.ctx, self.outcome)
            self.ctx.closers.append(self._prompt.aclose)
        return self._prompt

    @property
    def models(self) -> tuple[str, ...]:
        """--phoenix-model: the models the prompt runs on (none: the prompt's own)."""
        return self.settings.models

    def groups(self) -> list[Group]:
        """Each spec's group; on several models, one group per spec and model (each an
        experiment of its own, named by its model)."""
        bases = self.spec_groups()
        if len(self.models) < 2:
            return bases
        return [self.dataset_source.variant_group(base, model)
                for base in bases for model in self.models]

    def shared_groups(self) -> list[Group]:
        return self.groups()

    def model_of(self, group: Group) -> str | None:
        """The model a group runs the prompt on (None: the prompt's own)."""
        if group.variant is not None:
            return group.variant
        return self.models[0] if self.models else None

    def find_task(self, group: Group) -> PromptTask:
        self.prompt.check(group, self)  # every example fills the template, before any runs
        return self.prompt.task_for(self.model_of(group))

    def metadata(self, group: Group) -> dict[str, Any]:
        return self.prompt.metadata(self.model_of(group))

    def wants_costs(self) -> bool:
        """Several models are compared on their cost too."""
        return len(self.models) > 1 or super().wants_costs()

    def task_label(self, group: Group) -> str:
        """``prompt:NAME@TAG v12`` (the version's readable id) or ``prompt-file:PATH``."""
        from .._core.naming import row_id

        self.task(group)  # loaded, so its version is known
        under = self.prompt
        if under.name:
            return (f"prompt:{under.name}" + (f"@{under.ref}" if under.ref else "")
                    + (f" v{row_id(under.version_id)}" if under.version_id else ""))
        if under.file is not None:
            return f"prompt-file:{shown_path(under.file, under.rootpath)}"
        return "prompt"

    def known_paths(self) -> Callable[[str], str]:
        """A prompt's output: its lists are lists."""
        from .._run.prompt_task import without_list_indexes

        return without_list_indexes

    def baseline_spec(self) -> str:
        spec = super().baseline_spec()
        if spec.startswith("prompt:"):
            return self.prompt.baseline_spec(spec.removeprefix("prompt:"))
        return spec

    def baseline_problem(self, group: Group, problem: str) -> UsageProblem:
        wanted = self._prompt.baseline_version if self._prompt is not None else None
        if wanted is not None and problem.startswith("no experiment"):
            from .._core.commands import pytest_command, server_options

            name, tag, _ = wanted
            record = pytest_command(f"--phoenix-dataset={group.dataset_name}",
                                    f"--phoenix-task=prompt:{name}@{tag}",
                                    *server_options(self.settings.url, self.settings.url_source))
            return UsageProblem(
                f"--phoenix-baseline=prompt:{tag}: {problem} (prompt {name!r}, tagged {tag!r}); "
                f"record one first: {record}")
        return super().baseline_problem(group, problem)

    def finish(self, passed: bool | None) -> None:
        """The models side by side, then --phoenix-push-prompt and --phoenix-promote-tag."""
        if len(self.models) > 1:
            self._side_by_side()
        if self._prompt is not None:
            self.outcome.baseline_lines += self._prompt.finish(passed)

    def _side_by_side(self) -> None:
        """Each model's pass rates (with intervals), cost and latency: in the terminal, and as
        a table in the markdown summary."""
        from .._report.models import model_lines, model_markdown, model_rows

        groups = self.groups()
        results = self.outcome.results
        rows = model_rows([(group.variant or group.label, group.label,
                            [r for r in results if r.case.group.key == group.key])
                           for group in groups], self.outcome.costs,
                          self.outcome.costs_problem)
        self.outcome.baseline_lines += ["", *model_lines(rows)]
        self.outcome.markdown.append(model_markdown(rows))


class PromptUnderTest:
    """The prompt the run takes as its task, what the experiment says of it, and what is
    done with it at the end."""

    def __init__(self, ctx: Context, outcome: Outcome) -> None:
        self.ctx = ctx
        self.outcome = outcome
        spec = str(ctx.settings.task)
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
        self._tasks: dict[str | None, PromptTask] = {None: self.task}
        self._checked: set[str] = set()
        self.baseline_version: tuple[str, str, str] | None = None  # --phoenix-baseline=prompt:

    @property
    def rootpath(self) -> Path:
        return self.ctx.host.rootpath

    def _from_phoenix(self, reference: str) -> None:
        from .._phoenix.http import PhoenixError

        name, _, ref = reference.partition("@")
        self.name, self.ref = name, ref or None
        try:
            self.version = self.ctx.gateway.find_prompt_version(name, ref or None)
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-task {self.spec}: {exc}") from None

    def _from_file(self, given: str) -> None:
        path = Path(given)
        if not path.is_absolute():
            found = [p for p in (self.rootpath / path, Path.cwd() / path) if p.is_file()]
            path = found[0] if found else self.rootpath / path
        self.file = path
        try:
            self.version = read_prompt_file(path)
        except OSError as exc:
            raise UsageProblem(f"--phoenix-task {self.spec}: cannot read {path}: "
                               f"{exc.strerror or exc}") from None
        except FileError as exc:
            raise UsageProblem(f"--phoenix-task {self.spec}: {path}: {exc}") from None

    def _task(self) -> PromptTask:
        from .._evaluators.llm.client import JudgeError, Judges
        from .._evaluators.llm.judge import PromptSpec
        from .._evaluators.templates import TemplateError
        from .._run.prompt_task import PromptTask

        settings = self.ctx.settings
        label = self.name or (self.file.name if self.file else "prompt")
        try:
            prompt = PromptSpec.from_phoenix(label, {**self.version, "id": self.version_id})
        except ValueError:
            raise UsageProblem(
                f"--phoenix-task {self.spec}: the version has a "
                f"{(self.version.get('template') or {}).get('type')!r} template; only chat "
                f"prompts run as a task") from None
        provider = (prompt.model_provider or "OPENAI").upper()
        if provider not in CALLABLE:
            raise UsageProblem(
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
            raise UsageProblem(f"--phoenix-task {self.spec}: the prompt's model cannot be "
                               f"called: {exc}") from None
        if settings.cache:  # (never with repetitions: the options refuse the two together)
            models.cache = self.ctx.judges.cache
        task = PromptTask(label=self.spec, prompt=prompt, models=models,
                          variables_path=settings.prompt_variables,
                          messages_path=settings.prompt_messages)
        try:
            task.template_names()
        except TemplateError as exc:
            raise UsageProblem(f"--phoenix-task {self.spec}: the template does not parse "
                               f"as {prompt.template_format}: {exc}") from None
        return task

    @property
    def version_id(self) -> str | None:
        return self.version.get("id")

    def task_for(self, model: str | None) -> PromptTask:
        """The prompt as a task on ``model`` (None: its own), sharing the task's clients."""
        if model not in self._tasks:
            from dataclasses import replace

            base = self.task
            self._tasks[model] = replace(base, prompt=replace(base.prompt, model_name=model))
        return self._tasks[model]

    def check(self, group: Group, run: DatasetRun) -> None:
        """Every example of the group can fill the template (else a usage error naming the
        variable and the example's keys, before anything runs), and some example has the
        appended messages (a path that none has is a mistake in the option). An example
        whose appended messages cannot be read runs, and errors as on the server."""
        if group.key in self._checked or group.kind != "dataset":
            return
        self._checked.add(group.key)
        examples = run.dataset_source.dataset(group).examples
        messages_path = self.task.messages_path
        if messages_path and examples:
            from .._run.prompt_task import value_at

            reasons = []
            for example in examples:
                try:
                    value_at(example.input, messages_path)
                    break
                except (KeyError, TypeError) as exc:
                    reasons.append(str(exc))
            else:
                raise UsageProblem(
                    f"--phoenix-prompt-messages={messages_path}: no example of {group.label} "
                    f"has it ({reasons[0]}); the path is a dot path into the example's input")
        problems = [(example.id, problem) for example in examples
                    if (problem := self.task.problem(example)) is not None]
        if not problems:
            return
        shown = "; ".join(f"example {example_id}: {problem}"
                          for example_id, problem in problems[:3])
        more = f" (and {len(problems) - 3} more examples)" if len(problems) > 3 else ""
        raise UsageProblem(
            f"--phoenix-task {self.spec}: {len(problems)} of {len(examples)} examples of "
            f"{group.label} cannot fill the prompt: {shown}{more}. Rename the variables, or "
            f"point --phoenix-prompt-variables at the part of the example that holds them "
            f"(now {self.task.variables_path or '.'!r})")

    def metadata(self, model: str | None = None) -> dict[str, Any]:
        """What the experiment records of its task (the server cannot store a task config
        for an experiment made over REST; see docs/prompt-iteration.md)."""
        task = self.task_for(model)
        found: dict[str, Any] = {"kind": "prompt", "model_provider": task.prompt.
                                 model_provider, "model_name": task.model,
                                 "template_variables_path": task.variables_path}
        if model is not None:
            found["model_name_of_version"] = self.task.model
        if self.name:
            found.update(prompt=self.name, prompt_version_id=self.version_id)
            if self.ref:
                found["ref"] = self.ref
        if self.file is not None:
            found["file"] = shown_path(self.file, self.rootpath)
        if self.task.messages_path:
            found["appended_messages_path"] = self.task.messages_path
        return {"task": found}

    def baseline_spec(self, tag: str) -> str:
        """--phoenix-baseline=prompt:TAG: the experiments that ran the version of the prompt
        under test carrying TAG (a usage error when there is no such version)."""
        from .._phoenix.http import PhoenixError

        name = self.name or self.ctx.settings.push_prompt
        if not name:
            raise UsageProblem(
                f"--phoenix-baseline=prompt:{tag}: a prompt file has no prompt in Phoenix to "
                f"take the version tagged {tag!r} of: add --phoenix-push-prompt=NAME")
        try:
            version = self.ctx.gateway.find_prompt_version(name, tag)
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-baseline=prompt:{tag}: {exc}") from None
        self.baseline_version = (name, tag, str(version["id"]))
        return f"prompt-version:{version['id']}"

    async def aclose(self) -> None:
        await self.task.models.aclose()

    # --- the end: push and promote ---------------------------------------------------------

    def finish(self, passed: bool | None) -> list[str]:
        """--phoenix-push-prompt and --phoenix-promote-tag: the lines that say what was done,
        or why not."""
        settings = self.ctx.settings
        wanted = [f"--phoenix-{flag}={value}" for flag, value in (
            ("push-prompt", settings.push_prompt), ("promote-tag", settings.promote_tag))
            if value]
        if not wanted:
            return []
        why = self.outcome.promotion_blockers(passed)
        if self.file is not None and settings.promote_tag and not settings.push_prompt:
            why.append("a prompt file has no version in Phoenix to carry a tag: add "
                       "--phoenix-push-prompt=NAME")
        if why:
            return [f"{' and '.join(wanted)}: nothing done: {'; '.join(why)}"]
        from .._phoenix.http import PhoenixError

        gateway = self.ctx.gateway.reopened()  # the run's clients are closed by now
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
            self.outcome.promotion_failed = True
        finally:
            gateway.close()
        return lines

    def _push(self, gateway: Any, name: str) -> tuple[str, str]:
        from .._phoenix.http import PhoenixError

        shown = shown_path(self.file, self.rootpath) if self.file else self.spec
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
