"""API calling in API-Bank's level-1 prompt form (Li et al. 2023), used by API-Bank and mAPICall-Bank.

    {instruction: task header + "API descriptions:" + one JSON line per API}\\n
    User: ...\\nAI: ...\\nAPI-Request: [Name(k='v')]->{output}\\n ...\\nGenerate API Request:\\n   <- prompt
    API-Request: [ApiName(key='value', ...)]                                                  <- completion

API names, parameter keys and the descriptions stay English in every language (mAPICall-Bank keeps
them so); the dialogue is in the item's language.
"""
from __future__ import annotations

from ..records import ApiItem, Example

NAME = "api"
CUE = "Generate API Request:"
STOP = ("\n",)
"""A call is one line; a base model tends to continue with "->result" or the next turn."""


def format_invocation(api_name: str, arguments: dict[str, str]) -> str:
    """`Name(key='value', ...)`: API-Bank's own rendering, every value in single quotes, nothing escaped."""
    args = ", ".join(f"{k}='{v}'" for k, v in arguments.items())
    return f"{api_name}({args})"


def format_call(api_name: str, arguments: dict[str, str]) -> str:
    return f"API-Request: [{format_invocation(api_name, arguments)}]"


def render(item: ApiItem) -> Example:
    # the dialogue is kept byte-exact (API-Bank has turns with trailing spaces)
    context = f"{item.dialogue}\n" if item.dialogue else ""
    prompt = f"{item.instruction.strip()}\n{context}{CUE}\n"
    completion = (item.target or format_call(item.api_name, item.arguments)).strip()
    return Example(task=NAME, item_id=item.item_id, lang=item.lang, prompt=prompt, completion=completion,
                   gold={"api_name": item.api_name, "arguments": dict(item.arguments)})


def score(completion: str, gold, lang: str):
    """-> scoring.ItemScore (prediction, correct, strict, lenient, detail); the completion is cut at STOP."""
    from ..scoring import score_item

    return score_item(NAME, completion, gold, lang, stop=STOP)
