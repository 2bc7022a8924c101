"""A tiny BEIR folder with planted topics, and a scripted LLM backend for the synthesis tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from recwise.llm import Completion, Row

TOPICS = ["wing slipstream propeller lift", "heat conduction composite slab", "boundary layer flat plate transition",
          "hypersonic blunt body shock", "buckling cylinder shell load", "flutter panel supersonic"]


def write_topics(folder: Path, per_topic: int = 4) -> Path:
    """6 topics x ``per_topic`` documents; one query per topic judged relevant to its topic's documents."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs, qrels = [], ["query-id\tcorpus-id\tscore"]
    for t, words in enumerate(TOPICS):
        for j in range(per_topic):
            did = f"t{t}d{j}"
            docs.append({"_id": did, "title": f"study {j} of {words.split()[0]}", "text": f"{words} measured {j}"})
            qrels.append(f"q{t}\t{did}\t{1 + (j == 0)}")
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{t}", "text": f"what about {w}?"}) + "\n"
                                                  for t, w in enumerate(TOPICS)))
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


@pytest.fixture
def topics(tmp_path: Path) -> Path:
    return write_topics(tmp_path / "raw" / "topics")


class ScriptedBackend:
    """Drafts echo the positive's words; the reflection rejects queries whose text contains 'heat'."""

    name = "scripted"
    fingerprint = "scripted-v1"

    def __init__(self) -> None:
        self.rows = 0

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        out = []
        for row in rows:
            self.rows += 1
            chat = list(row.prompt)
            user = chat[1]["content"]
            query = user.split("\n", 1)[0]
            positive = user.split("Relevant passage: ", 1)[1].split("\n", 1)[0]
            if len(chat) == 2:
                out.append(Completion(f"{positive} but about something else entirely, with many extra words added"))
            elif "heat" in query:
                out.append(Completion("REJECT"))
            else:
                out.append(Completion(chat[2]["content"]))
        return out
