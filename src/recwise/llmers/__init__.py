"""LLM-enhanced recommendation, LLMERS survey families: offline steps that build a recommender.

The LLM and the text encoder run here, before training; the trained recommender (SASRec with
the options of :mod:`recwise.models.seq.sasrec`) never calls them.

* :mod:`recwise.llmers.text`: item text (title, year, genres), encoding, step bookkeeping;
* :mod:`recwise.llmers.knowledge`: KAR-style item and user profiles (knowledge enhancement);
* :mod:`recwise.llmers.interaction`: LLMRec-style pseudo positives (interaction enhancement).

Model enhancement (text-initialised item table, AlphaRec tower) needs only the encoded item text.
"""

from recwise.llmers.interaction import PseudoConfig, PseudoResult, cooccurrence_candidates, pick_positives
from recwise.llmers.knowledge import KnowledgeConfig, KnowledgeResult, build_knowledge
from recwise.llmers.text import (
    ItemMeta,
    StepStats,
    encode_rows,
    item_meta_rows,
    item_texts,
    item_tokens,
    lazy_generator,
    read_item_meta,
    write_jsonl,
)

__all__ = ["ItemMeta", "KnowledgeConfig", "KnowledgeResult", "PseudoConfig", "PseudoResult", "StepStats",
           "build_knowledge", "cooccurrence_candidates", "encode_rows", "item_meta_rows", "item_texts",
           "item_tokens", "lazy_generator", "pick_positives", "read_item_meta", "write_jsonl"]
