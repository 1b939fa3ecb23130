"""The gateway's prompt calls: finding a prompt version (by tag, id, or the latest, with a
message naming what exists when nothing matches), listing prompts, their versions and tags,
pushing a new version and tagging one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from .base import GatewayBase, closest
from .http import PhoenixError, raise_for_retryable

__all__ = ["PromptCalls"]


class PromptCalls(GatewayBase):
    """Prompt versions: found, listed, pushed and tagged (at collection time and at the end)."""

    def prompt_version(self, prompt: str, *, version_id: str | None = None,
                       tag: str | None = None) -> dict[str, Any] | None:
        """A prompt version (the server's v1 PromptVersion JSON); None if the tag is unknown."""
        if version_id:
            path = f"v1/prompt_versions/{quote(version_id)}"
        else:
            path = f"v1/prompts/{quote(prompt)}/tags/{quote(str(tag))}"
        doing = f"loading prompt {prompt!r}" + (f" tagged {tag!r}" if tag else "")
        response = self._get(path, None, doing)
        if response.status_code == 404 and tag:
            return None
        self._raise_for_status(response, doing)
        return dict(self._json(response, doing, "data")["data"])

    def find_prompt_version(self, prompt: str, ref: str | None) -> dict[str, Any]:
        """The version of ``prompt`` that ``ref`` names: a tag, else a version id (None: the
        latest). PhoenixError listing the closest prompts, or the prompt's tags and latest
        versions, when it names none."""
        data: dict[str, Any] | None = None
        if not ref:
            doing = f"loading the latest version of prompt {prompt!r}"
            response = self._get(f"v1/prompts/{quote(prompt)}/latest", None, doing)
            if response.status_code != 404:
                self._raise_for_status(response, doing)
                return dict(self._json(response, doing, "data")["data"])
        else:
            data = self.prompt_version(prompt, tag=ref)
            if data is None:  # not a tag: a version id?
                try:
                    data = self.prompt_version(prompt, version_id=ref)
                except PhoenixError as exc:
                    if exc.status is None or exc.status >= 500:
                        raise
        if data is not None:
            return data
        names = self.prompt_names()
        if prompt not in names:
            raise PhoenixError(f"there is no prompt {prompt!r} in {self.where()}."
                               + closest("prompts", prompt, names))
        versions = self.prompt_versions(prompt)
        tags = sorted({t for v in versions for t in self.prompt_version_tags(v["id"])})
        raise PhoenixError(
            f"prompt {prompt!r} has no tag or version {ref!r}."
            + closest("tags", str(ref), tags)
            + f" Its latest versions: {', '.join(v['id'] for v in versions[:5]) or 'none'}.")

    def prompt_names(self) -> list[str]:
        """Every prompt's name."""
        return [p["name"] for p in self.pages("v1/prompts", "listing prompts")]

    def prompt_versions(self, prompt: str, limit: int = 20) -> list[dict[str, Any]]:
        """A prompt's latest versions, newest first."""
        doing = f"listing the versions of prompt {prompt!r}"
        response = self._get(f"v1/prompts/{quote(prompt)}/versions", {"limit": limit}, doing)
        self._raise_for_status(response, doing)
        return list(self._json(response, doing, "data")["data"])

    def prompt_version_tags(self, version_id: str) -> list[str]:
        """The tags a prompt version carries."""
        doing = f"listing the tags of prompt version {version_id}"
        response = self._get(f"v1/prompt_versions/{quote(version_id)}/tags", None, doing)
        self._raise_for_status(response, doing)
        return [t["name"] for t in self._json(response, doing, "data")["data"]]

    def push_prompt_version(self, prompt: str, version: Mapping[str, Any]) -> dict[str, Any]:
        """A new version of ``prompt`` (the prompt made first if there is none): ``POST
        /v1/prompts``, which the server validates as it validates any prompt version. Sent
        once, never retried: a retry after an answer lost on the way back would make a second
        version (the caller looks whether the server made it)."""
        doing = f"creating a version of prompt {prompt!r}"
        try:
            response = self._http.post(
                "v1/prompts", json={"prompt": {"name": prompt}, "version": dict(version)},
                extensions=self._extensions(doing))
        except httpx.TransportError as exc:
            raise self.explain(exc, doing) from None
        self._raise_for_status(response, doing)
        return dict(self._json(response, doing, "data")["data"])

    def tag_prompt_version(self, version_id: str, tag: str, description: str) -> None:
        """Put ``tag`` on a prompt version (``POST /v1/prompt_versions/{id}/tags``: the server
        moves the tag when another version of the prompt carries it)."""
        doing = f"tagging prompt version {version_id} {tag!r}"

        def post() -> httpx.Response:
            return raise_for_retryable(self._http.post(
                f"v1/prompt_versions/{quote(version_id)}/tags",
                json={"name": tag, "description": description},
                extensions=self._extensions(doing)))

        response = self.call(doing, post)
        self._raise_for_status(response, doing)
