"""The LLMERS methods: each is a named set of ``--set`` options (no torch here, so the CLI can
list and check them without loading the protocol).

| method | family | options |
|---|---|---|
| ``plain`` | - | SASRec as in the sequential task |
| ``text-init`` | model enhancement: initialisation (LLM2X / LLMInit) | ``model.item_init=text`` |
| ``alpharec`` | model enhancement: embedding utilisation (AlphaRec) | ``model.item_tower=alpharec`` |
| ``kar`` | knowledge enhancement (KAR), leak-free user profiles | ``model.knowledge=kar`` |
| ``kar-history`` | KAR, whole-history user profiles (leaky) | ``model.knowledge=kar kar.user_profile=history`` |
| ``kar-item`` | the same, item profiles only | ``model.knowledge=kar model.kar_user=false`` |
| ``llmrec`` | interaction enhancement (LLMRec) | ``data.pseudo=llmrec`` |
"""

from __future__ import annotations

from recwise.registry import Registry

__all__ = ["DEFAULT_METHODS", "METHODS", "SCOPES"]

SCOPES = ("train", "model", "data", "kar", "llmrec", "llm", "encoder")

METHODS: Registry[dict[str, dict[str, str]]] = Registry("LLMERS method", hint="(`recwise models llmers` lists them)")
for _name, _options in (
    ("plain", {}),
    ("text-init", {"model": {"item_init": "text"}}),
    ("alpharec", {"model": {"item_tower": "alpharec"}}),
    ("kar", {"model": {"knowledge": "kar"}}),
    ("kar-history", {"model": {"knowledge": "kar"}, "kar": {"user_profile": "history"}}),
    ("kar-item", {"model": {"knowledge": "kar", "kar_user": "false"}}),
    ("llmrec", {"data": {"pseudo": "llmrec"}}),
):
    METHODS.add(_name, _options)

DEFAULT_METHODS = ("plain", "text-init", "alpharec", "kar", "kar-item", "llmrec")  # bench's default order
