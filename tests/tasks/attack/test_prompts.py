"""Few-shot exemplars: generated problems get the generator's own problems (same steps and
difficulty, never a run's question); other data keeps the fixed exemplars per answer kind."""

from __future__ import annotations

from recwise.data.reasoning import Problem, generate_arith
from recwise.tasks.attack.prompts import ARITH_EXEMPLAR_SEED, clean_query, examples


def test_generated_problems_get_exemplars_of_their_own_shape() -> None:
    for steps, difficulty in ((1, "easy"), (3, "hard")):
        p = generate_arith(n=1, steps=steps, difficulty=difficulty)[0]
        ex = examples(p, 3)
        assert len(ex) == 3
        made = generate_arith(n=3, steps=steps, difficulty=difficulty, seed=ARITH_EXEMPLAR_SEED)
        assert [e[0] for e in ex] == [m.question for m in made] and p.question not in [e[0] for e in ex]
        for (_, sol, answer), m in zip(ex, made):
            assert len(sol) == steps + 1 and answer == m.answer
        query = clean_query(p, 2)
        assert query.count("[Example Problem") == 2 and made[0].solution[-1] in query
        assert query.endswith(f"[Your Problem] {p.question}\n\n[Solution] \n\n")


def test_other_data_keeps_the_fixed_exemplars() -> None:
    gsm = Problem("gsm8k-1", "Kim has 3 pens. How many?", "3")
    assert [e[2] for e in examples(gsm, 3)] == ["24", "19", "7"]
    fake = Problem("arith-weird", "q", "1")  # not the generator's id layout
    assert examples(fake, 1) == examples(gsm, 1)
