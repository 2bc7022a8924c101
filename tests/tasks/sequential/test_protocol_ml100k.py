"""On the real MovieLens-100K: a short SASRec run beats item popularity; history masking matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.data.sequence import eval_inputs, prefix_examples, seq_schema
from recwise.models.seq.pop import Pop
from recwise.tasks.sequential import SeqRun, evaluate, run


def _popularity(seqs):  # noqa: ANN001, ANN202
    counts = np.bincount(prefix_examples(seqs, 50)["target"].numpy(), minlength=seqs.n_items + 1)
    model = Pop(seq_schema(seqs.n_items))
    model.logit.data[:, 0] = torch.log(torch.from_numpy(counts).float() + 1)
    return model


def test_history_masking_raises_popularity_scores(ml100k_seq) -> None:  # noqa: ANN001
    pop, items = _popularity(ml100k_seq), torch.from_numpy(ml100k_seq.items)
    test = eval_inputs(ml100k_seq, "test", 50)
    plain = evaluate(pop, test, items)["all"]["ndcg@10"]
    masked = evaluate(pop, test, items, mask=True)["all"]["ndcg@10"]
    assert masked > plain  # seen popular items no longer crowd the top (ML-100K has no repeats)


@pytest.mark.slow  # trains SASRec on ML-100K
def test_sasrec_beats_popularity(ml100k_seq) -> None:  # noqa: ANN001
    items = torch.from_numpy(ml100k_seq.items)
    val = eval_inputs(ml100k_seq, "val", 50)
    pop = evaluate(_popularity(ml100k_seq), val, items)["all"]["ndcg@10"]
    rows = run(SeqRun("ml-100k", "sasrec", 0), ml100k_seq, train_options={"epochs": 2}, progress=False,
               model_options={"n_layers": 1, "hidden_dropout": 0.2, "attn_dropout": 0.2})  # short: 1 layer
    got = next(r.value for r in rows if (r.split, r.segment, r.metric) == ("val", "all", "ndcg@10"))
    assert got > pop * 1.5, (got, pop)
