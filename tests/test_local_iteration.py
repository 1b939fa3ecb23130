"""Local iteration: choosing examples, limits and samples, the NAME@VERSION:SPLIT short form,
and --phoenix-only-failures (dataset 'qa', task qa_app:answer, a real Phoenix)."""

from __future__ import annotations

from typing import Any

import pytest

RUN = ("--phoenix-task=qa_app:answer", "--phoenix-no-upload", "-p", "no:cacheprovider")


def _case_names(result: pytest.RunResult) -> list[str]:
    return [line.split("::")[1].split()[0] for line in result.outlines
            if line.startswith("phoenix:qa::")]


def test_examples_by_case_id_short_id_or_example_id(pytester: pytest.Pytester, qa_app: None,
                                                    admin: Any, qa_dataset: dict) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", *RUN, "--collect-only", "-q")
    every = [line.split("::")[1] for line in result.outlines if line.startswith("phoenix:qa::")]
    assert len(every) == 4
    hamlet = next(c for c in every if "hamlet" in c)
    listed = admin.http.get(f"/v1/datasets/{qa_dataset['id']}/examples").json()["data"]
    spain_id = listed["examples"][3]["id"]
    result = pytester.runpytest("--phoenix-dataset=qa", *RUN, "-v",
                                f"--phoenix-examples={every[0].split('-')[0]},{hamlet}",
                                f"--phoenix-examples={spain_id}")
    assert _case_names(result) == [every[0], hamlet, every[3]]


def test_an_unknown_example_is_a_usage_error_listing_real_ones(pytester: pytest.Pytester,
                                                               qa_app: None) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", *RUN, "--phoenix-examples=ex999")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-examples: no example ex999 in dataset(s) "
                                 "qa; examples include ex*, ex*, ex*, ex* (or give example ids)"])


def test_limit_takes_the_first_n_or_a_seeded_sample(pytester: pytest.Pytester,
                                                    qa_app: None) -> None:
    first = _case_names(pytester.runpytest("--phoenix-dataset=qa", *RUN, "-v",
                                           "--phoenix-limit=2"))
    assert len(first) == 2 and "france" in first[0] and "2-2" in first[1]
    samples = [_case_names(pytester.runpytest("--phoenix-dataset=qa", *RUN, "-v",
                                              "--phoenix-limit=2", f"--phoenix-sample-seed={s}"))
               for s in ("7", "7", "8", "9", "10")]
    assert all(len(s) == 2 for s in samples)
    assert samples[0] == samples[1]  # the same seed, the same sample
    assert len({tuple(s) for s in samples}) > 1  # other seeds pick other examples
    result = pytester.runpytest("--phoenix-dataset=qa", *RUN, "--phoenix-sample-seed=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*a sample needs its size: add --phoenix-limit=N"])


def test_short_form_picks_version_and_split(pytester: pytest.Pytester, qa_app: None,
                                            admin: Any, qa_dataset: dict) -> None:
    version = admin.http.get(f"/v1/datasets/{qa_dataset['id']}/versions").json()["data"][0][
        "version_id"]
    result = pytester.runpytest(f"--phoenix-dataset=qa@{version}:geo", *RUN, "-v")
    names = _case_names(result)
    assert len(names) == 2 and all("capital" in n for n in names)
    result = pytester.runpytest("--phoenix-dataset=qa@nope", *RUN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: version 'nope' not found for dataset 'qa'.*"])


def test_only_failures_keeps_the_report_to_failing_cases(pytester: pytest.Pytester,
                                                         qa_app: None) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", *RUN, "--phoenix-only-failures",
                                "--phoenix-results=r.csv")
    result.assert_outcomes(passed=2, failed=2)  # counted, not shown
    result.stdout.fnmatch_lines(["phoenix:qa FF *"])  # no dots for the passing cases
    result.stdout.fnmatch_lines(["qa: 4 cases, 2 passed, 2 failed", "results: r.csv (6 rows)"])
