"""Create the example datasets in a Phoenix server, once.

    python example_suite/seed.py --url http://127.0.0.1:6006

'qa-golden' holds 20 questions with reference answers, four attached built-in evaluators and
one attached LLM judge ("grounded", a prompt of ours kept in Phoenix prompt management, its
first version tagged production). 'grounded-golden' is that judge's golden set: answers a
person labelled grounded or not, in the shape Phoenix writes for annotated spans, for
``--phoenix-benchmark=grounded``. 'qa-prompt' holds five of the questions for a prompt as the
task: its attached built-in reads the answer where a prompt's run holds it, and the prompt
'qa-answer' (a version tagged production) is what it runs. The pytest plugin never creates or
edits datasets; this script is how the example gets them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from phoenix_admin import PhoenixAdmin

NAME = "qa-golden"
QUESTIONS = [
    ("What is the capital of France?", "Paris", "geography"),
    ("What is the capital of Japan?", "Tokyo", "geography"),
    ("What is the capital of Canada?", "Ottawa", "geography"),
    ("What is the capital of Australia?", "Canberra", "geography"),
    ("What is the largest planet?", "Jupiter", "science"),
    ("What is the closest star?", "The Sun", "science"),
    ("What is the boiling point of water?", "100 °C at sea level", "science"),
    ("What is the chemical symbol for gold?", "Au", "science"),
    ("What is the speed of light?", "About 299,792 km per second", "science"),
    ("Who wrote Hamlet?", "William Shakespeare", "literature"),
    ("Who wrote Pride and Prejudice?", "Jane Austen", "literature"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", "art"),
    ("What is the square root of 144?", "12", "math"),
    ("What is 2 + 2?", "4", "math"),
    ("How many days are in a leap year?", "366", "math"),
    ("Who invented the telephone?", "Alexander Graham Bell", "history"),
    ("What is the longest river?", "The Nile", "geography"),
    ("What is the freezing point of water?", "0 °C", "science"),
    ("What is the smallest prime number?", "2", "math"),
    ("What language is spoken in Brazil?", "Portuguese", "geography"),
]


GROUNDED = {"name": "grounded", "optimizationDirection": "MAXIMIZE",
            "values": [{"label": "grounded", "score": 1.0},
                       {"label": "ungrounded", "score": 0.0}]}
JUDGE_MESSAGES = [
    {"role": "system", "content": (
        "You review answers of a question-answering app. An answer is grounded when it agrees "
        "with the reference answer on what the question asks; wording may differ and extra "
        "detail is fine unless it contradicts the reference. Call the grounded tool with a "
        "one-sentence explanation and the label.")},
    {"role": "user", "content": (
        "<question>{{question}}</question>\n<answer>{{answer}}</answer>\n"
        "<reference>{{reference}}</reference>")},
]


# The judge's golden set: (question, reference, the answer judged, the person's label).
JUDGED = [
    ("What is the capital of France?", "Paris", "Paris", "grounded"),
    ("What is the capital of Japan?", "Tokyo", "It is Tokyo.", "grounded"),
    ("What is the largest planet?", "Jupiter", "Saturn", "ungrounded"),
    ("Who wrote Hamlet?", "William Shakespeare", "Christopher Marlowe", "ungrounded"),
    ("What is the speed of light?", "About 299,792 km per second",
     "Roughly 300,000 km per second", "grounded"),
    ("What is 2 + 2?", "4", "Four", "grounded"),
    ("What is the longest river?", "The Nile", "The Nile, in Africa", "grounded"),
    ("How many days are in a leap year?", "366", "365", "ungrounded"),
]
JUDGE_GOLDEN = "grounded-golden"
PROMPT_DATASET = "qa-prompt"
QA_PROMPT = [{"role": "system", "content": "Answer the trivia question in one sentence."},
             {"role": "user", "content": "{{question}}"}]


def seed_prompt_dataset(admin: PhoenixAdmin) -> None:
    """Dataset 'qa-prompt' and prompt 'qa-answer', for --phoenix-task=prompt:qa-answer."""
    if admin.dataset_id(PROMPT_DATASET):
        return
    examples = [{"input": {"question": q}, "output": {"answer": a}, "metadata": {"topic": t}}
                for q, a, t in QUESTIONS[:3] + QUESTIONS[9:11]]
    dataset_id = admin.create_dataset(PROMPT_DATASET, examples)
    # A prompt's run holds {"messages": [{"role": "assistant", "content": ...}], ...}.
    admin.attach_builtin(dataset_id, "contains", "mentions_reference",
                         {"text": "$.output.messages[0].content",
                          "words": "$.reference.answer"})
    if admin.http.get("/v1/prompts/qa-answer/latest").status_code == 404:
        admin.create_prompt("qa-answer", QA_PROMPT, tags=["production"],
                            invocation_parameters={"temperature": 0.0})


def seed_judge_golden(admin: PhoenixAdmin) -> str:
    """The grounded judge's golden set, with the judge attached to it (following the prompt
    version tagged production)."""
    existing = admin.dataset_id(JUDGE_GOLDEN)
    if existing:
        return existing
    examples = [{"input": {"question": q, "reference": r}, "output": {"answer": a},
                 "metadata": {"annotations": {"grounded": [
                     {"label": label, "annotator_kind": "HUMAN",
                      "explanation": "labelled by hand for the example suite"}]}}}
                for q, r, a, label in JUDGED]
    dataset_id = admin.create_dataset(JUDGE_GOLDEN, examples)
    if admin.http.get("/v1/prompts/qa-grounded-judge/tags/production").status_code == 404:
        # (a server seeded before the judge's golden set: its latest version is production)
        admin.tag_prompt_version(admin.prompt_version_input("qa-grounded-judge")["id"],
                                 "production")
    admin.attach_llm_evaluator(dataset_id, "grounded", "qa-grounded-judge", [GROUNDED],
                               {"question": "$.input.question", "answer": "$.output.answer",
                                "reference": "$.input.reference"},
                               prompt_version_tag="production")
    return dataset_id


def seed(url: str) -> str:
    admin = PhoenixAdmin(url)
    try:
        existing = admin.dataset_id(NAME)
        if existing:
            seed_judge_golden(admin)
            seed_prompt_dataset(admin)
            return existing
        examples = [{"input": {"question": q}, "output": {"answer": a},
                     "metadata": {"topic": t}} for q, a, t in QUESTIONS]
        splits = [[t] for _, _, t in QUESTIONS]
        dataset_id = admin.create_dataset(NAME, examples, splits=splits)
        answer = {"expected": "$.reference.answer", "actual": "$.output"}
        admin.attach_builtin(dataset_id, "exact_match", "correct_answer", answer,
                             literal_mapping={"case_sensitive": False})
        admin.attach_builtin(dataset_id, "contains", "mentions_reference",
                             {"text": "$.output", "words": "$.reference.answer"})
        admin.attach_builtin(dataset_id, "regex", "no_refusal", {"text": "$.output"},
                             literal_mapping={"pattern": r"^(?!I don't know).*"},
                             output_configs=[{"categorical": {
                                 "name": "answered", "optimizationDirection": "MAXIMIZE",
                                 "values": [{"label": "answered", "score": 1},
                                            {"label": "refused", "score": 0}]}}])
        admin.attach_builtin(dataset_id, "levenshtein_distance", "edit_distance", answer)
        prompt = admin.create_prompt("qa-grounded-judge", JUDGE_MESSAGES,
                                     output_configs=[GROUNDED], tags=["production"],
                                     invocation_parameters={"temperature": 0.0})
        admin.attach_llm_evaluator(dataset_id, "grounded", prompt["prompt_id"], [GROUNDED],
                                   {"question": "$.input.question", "answer": "$.output",
                                    "reference": "$.reference.answer"})
        seed_judge_golden(admin)
        seed_prompt_dataset(admin)
        return dataset_id
    finally:
        admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    print(seed(parser.parse_args().url))
