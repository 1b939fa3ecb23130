"""Run the example suite end to end on a fresh machine that has only Python 3.11+.

    python3 example_suite/run.py [pytest arguments]

Creates the virtual environments it needs (``.venv`` for the plugin, a cached one for the
server), starts a local Phoenix (SQLite in ``.phoenix/``) unless one it started is still up,
seeds the ``qa-golden`` dataset once, then runs ``pytest --phoenix-dataset=qa-golden`` in this
folder (the pytest arguments go to this run). Then it benchmarks that dataset's LLM judge
against the human labels of 'grounded-golden' and promotes its prompt version when it agrees
well enough.

Then a prompt as the task: the prompt 'qa-answer' tagged production in Phoenix runs over
'qa-prompt' as the playground would run it, then the candidate in ``prompts/qa-answer.yaml``,
which is pushed as a new version and tagged production when its gate passes.

Then production traces: ``traced_app.py`` (a support bot instrumented with
openinference-instrumentation-openai) answers two questions into the project ``support-bot``,
``pytest --phoenix-project=support-bot`` judges its new spans and adds the failing one to the
dataset ``support-bot-regressions``, and a second run finds nothing left to judge. Then the bot
holds a three-turn conversation (one session), and ``pytest --phoenix-target=session
--phoenix-evaluators=conversation_resolution`` judges it as a whole. The server
stays up afterwards so that you can look at the experiment, the annotated spans and the dataset.

LLM judges call OpenAI when OPENAI_API_KEY is set (or the OpenAI-compatible server at
OPENAI_BASE_URL). Without either, they answer through the stand-in judge
(scripts/stand_in_judge.py): a deterministic fake model, started for this run and said so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))

from phoenix_server import (  # noqa: E402
    ensure_server_venv,
    free_port,
    is_healthy,
    running_server,
    start_server,
)
from run_tests import ensure_dev_venv  # noqa: E402

WORKDIR = ROOT / ".phoenix"


def main() -> int:
    if sys.version_info < (3, 11):
        raise SystemExit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    say("checking the plugin's virtual environment (.venv; created the first time, one to "
        "three minutes)")
    python = ensure_dev_venv()
    url = running_server(WORKDIR)
    if url is None:
        say("checking the Phoenix server's virtual environment (cached; created the first "
            "time, one to three minutes)")
        ensure_server_venv()
        port = 6006 if not is_healthy("http://127.0.0.1:6006") else free_port()
        say(f"starting Phoenix on 127.0.0.1:{port} (data in {WORKDIR}; 10 to 40 s) ...")
        started = time.monotonic()
        url = start_server(WORKDIR, port=port, detach=True, progress=say).url
        say(f"Phoenix is up at {url} ({time.monotonic() - started:.0f} s)")
    else:
        say(f"Phoenix started earlier is up at {url}")
    say("seeding the example datasets and prompts (once; skipped when they exist)")
    subprocess.run([str(python), str(HERE / "seed.py"), "--url", url], check=True,
                   stdout=subprocess.DEVNULL)
    env = {**os.environ, "PHOENIX_COLLECTOR_ENDPOINT": url}
    env.pop("PHOENIX_ENDPOINT", None)
    judge = None
    if not env.get("OPENAI_API_KEY") and not env.get("OPENAI_BASE_URL"):
        judge = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "stand_in_judge.py")],
                                 stdout=subprocess.PIPE, text=True)
        assert judge.stdout is not None
        env["OPENAI_BASE_URL"] = judge.stdout.readline().rsplit(" ", 1)[-1].strip()
        print(f"no OPENAI_API_KEY set: the LLM judges answer through the stand-in judge at "
              f"{env['OPENAI_BASE_URL']} (a deterministic fake, not a real model)", flush=True)
    command = [str(python), "-m", "pytest", "--phoenix-dataset=qa-golden", *sys.argv[1:]]
    print(f"\n--- the example suite: {' '.join(command[2:])} ---", flush=True)
    try:
        code = subprocess.run(command, cwd=HERE, env=env).returncode
        benchmark = [str(python), "-m", "pytest", "--phoenix-dataset=grounded-golden",
                     "--phoenix-benchmark=grounded",
                     "--phoenix-fail-under=agreement(grounded)>=0.7",
                     "--phoenix-promote-tag=production", "-p", "no:cacheprovider"]
        print(f"\n--- the judge against human labels: {' '.join(benchmark[2:])} ---", flush=True)
        benchmarked = subprocess.run(benchmark, cwd=HERE, env=env).returncode
        prompted = prompt_iteration(python, env, stand_in=judge is not None)
        traces = production_traces(python, url, env, stand_in=judge is not None)
    finally:
        if judge is not None:
            judge.terminate()
            judge.wait(timeout=10)
    stop = f"python3 {ROOT / 'scripts' / 'phoenix_server.py'} stop --workdir {WORKDIR}"
    print(f"\nPhoenix is still running at {url}; open the links above to see the experiment "
          f"and the annotated spans.\nStop it with: {stop}")
    return code or benchmarked or prompted or traces


def say(message: str) -> None:
    print(f"[example] {message}", flush=True)


def configure_stand_in(env: dict[str, str], switches: dict[str, object]) -> None:
    """Set the stand-in's switches (it plays the app's model too)."""
    import json
    import urllib.request

    root = env["OPENAI_BASE_URL"].removesuffix("/v1")
    request = urllib.request.Request(f"{root}/_control/configure",
                                     data=json.dumps(switches).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


def prompt_iteration(python: Path, env: dict[str, str], *, stand_in: bool) -> int:
    """The production prompt, then the candidate file pushed and promoted if it passes. The
    exit status: the candidate's run."""
    if stand_in:  # four right answers and one wrong: the gate of 0.8 passes, one case fails
        configure_stand_in(env, {"answers": [
            ["France", "Paris."], ["Japan", "Tokyo."], ["Canada", "Toronto."],
            ["Hamlet", "William Shakespeare."], ["Pride and Prejudice", "Jane Austen."]]})
    runs = [["--phoenix-task=prompt:qa-answer@production"],
            ["--phoenix-task=prompt-file:prompts/qa-answer.yaml",
             "--phoenix-fail-under=contains=0.8", "--phoenix-push-prompt=qa-answer",
             "--phoenix-promote-tag=production"]]
    code = 0
    for options in runs:
        command = [str(python), "-m", "pytest", "--phoenix-dataset=qa-prompt", *options,
                   "-p", "no:cacheprovider"]
        print(f"\n--- a prompt as the task: {' '.join(command[2:])} ---", flush=True)
        code = subprocess.run(command, cwd=HERE, env=env).returncode
    return code


def production_traces(python: Path, url: str, env: dict[str, str], *, stand_in: bool) -> int:
    """The app's traffic into project support-bot, judged twice: the second run finds nothing
    new. The exit status: 0 when both runs did what they should."""
    if stand_in:  # the stand-in plays the app's model too: one right answer, one wrong
        configure_stand_in(env, {"answers": [["France", "Paris"], ["Spain", "Barcelona"]],
                                 "rules": [["Barcelona", "incorrect"], ["<answer>", "correct"]]})
    print("\n--- production traces: the support bot answers two questions ---", flush=True)
    subprocess.run([str(python), str(HERE / "traced_app.py"), "--project", "support-bot",
                    "--phoenix-url", url], check=True, env=env)
    judge = [str(python), "-m", "pytest", "--phoenix-project=support-bot",
             "--phoenix-reference=$.metadata.documents", "--phoenix-settle=0s",
             "--phoenix-add-failures-to=support-bot-regressions", "-p", "no:cacheprovider"]
    print(f"\n--- {' '.join(judge[2:])} ---", flush=True)
    subprocess.run(judge, cwd=HERE, env=env)  # fails: one answer is wrong, as intended
    print("\n--- the same command again: every span is judged already ---", flush=True)
    again = subprocess.run(judge, cwd=HERE, env=env).returncode
    return again or conversation(python, url, env, stand_in=stand_in)


def conversation(python: Path, url: str, env: dict[str, str], *, stand_in: bool) -> int:
    """A three-turn conversation of the support bot (one session), judged as a whole by the
    plugin's session judge. The exit status of the judging run."""
    import uuid

    if stand_in:  # the app's model answers each turn; the judge finds the conversation resolved
        configure_stand_in(env, {
            "answers": [["Thanks", "You are welcome."], ["sure", "Yes, it is Madrid."],
                        ["Spain", "Madrid"]],
            "rules": [["<conversation>", "resolved"]]})
    session = f"support-chat-{uuid.uuid4().hex[:8]}"
    print(f"\n--- production sessions: the support bot holds conversation {session} ---",
          flush=True)
    subprocess.run([str(python), str(HERE / "traced_app.py"), "--project", "support-bot",
                    "--phoenix-url", url, "--session", session,
                    "What is the capital of Spain?", "Are you sure?", "Thanks!"],
                   check=True, env=env)
    judge = [str(python), "-m", "pytest", "--phoenix-project=support-bot",
             "--phoenix-target=session", "--phoenix-evaluators=conversation_resolution",
             "--phoenix-settle=0s", "-p", "no:cacheprovider"]
    print(f"\n--- {' '.join(judge[2:])} ---", flush=True)
    return subprocess.run(judge, cwd=HERE, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
