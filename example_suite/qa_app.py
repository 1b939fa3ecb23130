"""A tiny question-answering app: the task under test in the example suite.

A real app would call an LLM here; this one looks answers up in a small knowledge base so that
the example runs anywhere, with no API key.
"""

from __future__ import annotations

import re

KNOWLEDGE = {
    "capital of france": "Paris",
    "capital of japan": "Tokyo",
    "capital of canada": "Ottawa",
    "capital of australia": "Canberra",
    "largest planet": "Jupiter",
    "closest star": "The Sun",
    "boiling point of water": "100 °C at sea level",
    "chemical symbol for gold": "Au",
    "speed of light": "About 299,792 km per second",
    "author of hamlet": "William Shakespeare",
    "author of pride and prejudice": "Jane Austen",
    "painter of the mona lisa": "Leonardo da Vinci",
    "square root of 144": "12",
    "2 + 2": "4",
    "days in a leap year": "366",
    "inventor of the telephone": "Alexander Graham Bell",
    "longest river": "The Nile",
    "freezing point of water": "0 °C",
    "smallest prime number": "2",
    "language of brazil": "Portuguese",
}

ALIASES = {
    "who wrote hamlet": "author of hamlet",
    "who wrote pride and prejudice": "author of pride and prejudice",
    "who painted the mona lisa": "painter of the mona lisa",
    "what is 2 + 2": "2 + 2",
    "how many days are in a leap year": "days in a leap year",
    "who invented the telephone": "inventor of the telephone",
    "what language is spoken in brazil": "language of brazil",
}


def answer(question: str) -> str:
    """Answer a question, or say so when it is not known."""
    text = re.sub(r"[?!.]+$", "", question.strip().lower())
    text = ALIASES.get(text, text)
    for topic, reply in KNOWLEDGE.items():
        if text.endswith(topic):
            return reply
    return "I don't know."
