"""The translation prompts, versioned: a prompt's sha256 goes into every cache key and the manifest, so
a changed prompt never reuses translations made with another."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import languages

if TYPE_CHECKING:
    from .units import Unit


@dataclass(frozen=True)
class Prompt:
    version: str
    system: str
    user: str
    keep: str
    """Added to the user message when the example has values that must not change."""
    retry: str
    """Sent after a rejected answer, with the validation error."""

    @property
    def sha256(self) -> str:
        blob = json.dumps([self.version, self.system, self.user, self.keep, self.retry], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def messages(self, unit: "Unit", *, lang: str, source_lang: str) -> list[dict[str, str]]:
        target, source = languages.get(lang), languages.get(source_lang)
        names = {"language": target.name, "code": target.code, "source": source.name}
        keep = self.keep.format(values=", ".join(f"`{v}`" for v in unit.fixed)) if unit.fixed else ""
        return [{"role": "system", "content": self.system.format(**names)},
                {"role": "user", "content": self.user.format(**names, keep=keep, example=unit.dumps())}]

    def retry_message(self, reason: str, detail: str) -> dict[str, str]:
        return {"role": "user", "content": self.retry.format(reason=reason, detail=detail)}


_RETRY = ("An automatic check rejected your answer ({reason}): {detail}\n"
          "Translate the example again and reply with the whole corrected JSON object only.")

MAPICALL_V1 = Prompt(
    version="mapicall-v1",
    system=(
        "You translate examples of a benchmark for tool-using AI assistants from {source} into {language} "
        "({code}).\n"
        "You receive one example as a JSON object: a conversation whose \"turns\" are said by the User, "
        "answered by the AI, or are API calls that the AI makes. Reply with the whole example as one JSON "
        "object with exactly the same structure: the same keys, the same turns in the same order, the same "
        "roles and the same API calls.\n\n"
        "Translate into natural, fluent {language}, as a native speaker would write it:\n"
        "- the \"text\" of every User and AI turn;\n"
        "- argument values in \"param_dict\" that are free natural-language text, such as the content of a "
        "reminder or an agenda item, a meeting topic, a message, search keywords or a symptom. Use the same "
        "wording for such a value wherever the conversation mentions it.\n\n"
        "Copy unchanged, character for character:\n"
        "- every JSON key, every \"role\", every \"api_name\" and every key of \"param_dict\";\n"
        "- argument values that are identifiers or data: user names, passwords, tokens, ids, codes, e-mail "
        "addresses, URLs, numbers, dates and times (such as 2023-03-14 10:00:00), booleans, language codes, "
        "and Python-style lists or dictionaries;\n"
        "- those values also where the User or AI text mentions them. Names of people, products and places "
        "may stay as they are.\n\n"
        "Do not add, drop, merge, split or reorder anything, and do not answer the conversation yourself. "
        "Reply with the JSON object only."),
    user="Translate this example into {language}.{keep}\n\n{example}",
    keep=" These values must stay exactly as they are: {values}.",
    retry=_RETRY,
)

FIELDS_V1 = Prompt(
    version="fields-v1",
    system=(
        "You translate dataset records from {source} into {language} ({code}).\n"
        "You receive one record as a JSON object whose values are texts. Reply with one JSON object with "
        "exactly the same keys, each value translated into natural, fluent {language}, as a native speaker "
        "would write it.\n"
        "Keep unchanged: the keys; every number and its digits; formulas, code, URLs, e-mail addresses and "
        "placeholders in braces; names of people.\n"
        "Do not solve, answer, shorten or extend the texts. Reply with the JSON object only."),
    user="Translate this record into {language}.{keep}\n\n{example}",
    keep=" These values must stay exactly as they are: {values}.",
    retry=_RETRY,
)

PROMPTS = {p.version: p for p in (MAPICALL_V1, FIELDS_V1)}
PROMPT_VERSION = MAPICALL_V1.version
DEFAULT_PROMPT = {"api-bank": MAPICALL_V1.version, "jsonl": FIELDS_V1.version}
