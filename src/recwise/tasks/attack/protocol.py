"""The attack protocol: clean chain-of-thought run, one attack, optional self-review defence, stealth.

One run = one target model, one dataset slice, one attack at one sigma and one shot count:

1. clean: every question with the released CoT prompt (zero- or few-shot), judged;
2. injection, per attack (:mod:`.attacks`):
   - ``seed-p``: the assistant LLM solves the question, rewrites it so that it "strictly leads to a
     different answer" and solves the rewrite; the rewrite's first steps and its answer are injected.
     A rewrite is *unusable* when it is empty or the question itself, or its solution states no
     answer or the gold one; then the deterministic fallback changes one number of the question and
     recomputes the known chain (GSM8K's annotations, the generated problems' operations); where no
     chain is known the assistant's text is injected as is (as released). Both counts are recorded;
   - ``seed-s``: the target's own clean trace, cut after the same number of steps, its last kept
     step altered (:func:`~.attacks.alter_step`);
   - ``preemptive``: only ``The answer is: <wrong>`` before an empty solution (UPA/MPA style);
   - ``mistake``: the target's own kept steps plus one appended wrong step;
3. attacked: the target continues after the injected text, judged;
4. defence (``self-review``): a second turn asks the target to check the whole solution;
5. stealth: a detector LLM asked whether the visible solution was tampered with (on attacked and on
   clean traces, so the false-alarm rate is known), and the rule-based arithmetic check.

Every stage is one batched ``generate`` call per chunk of ``chunk`` prompts through the LLM cache,
so a run killed mid-way resumes without repeating finished chunks, and a re-run makes zero calls.
Outputs: result rows (segment ``attack=...,sigma=...,shots=...``), ``attacks.jsonl`` (one record
per question) and ``run.json`` (options, counts, LLM calls, tokens, wall time).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.reasoning import ArithConfig, Problem, perturb_problem
from recwise.errors import ConfigError
from recwise.llm import CountingBackend, Usage  # re-exported: this protocol's public names
from recwise.metrics.reasoning import arithmetic_consistent, attack_metrics, extract_answer, judge
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.tasks.attack.attacks import (
    ATTACKS,
    alter_step,
    appended_mistake,
    kept_steps,
    modified_question,
    numbered,
    preemptive_of,
    wrong_answer,
)
from recwise.tasks.attack.prompts import (
    MAX_SHOTS,
    SYSTEM,
    as_plain,
    attacked_query,
    chat,
    clean_query,
    detector_prompt,
    instruction,
    modify_turn,
    review_turn,
)

__all__ = ["AttackConfig", "CountingBackend", "SCOPES", "Usage", "check_options", "dataset_label", "generators",
           "run", "segment"]

TASK = "attack"
SCOPES = ("attack", "llm", "assistant", "detector", "arith")
STOP = ("[Question]", "[Your Problem]", "[Example Problem")  # a small model starting a new problem


@dataclass(frozen=True)
class AttackConfig:
    """One cell's protocol options (``--set attack.KEY=VALUE``; the CLI flags set the first five).

    attack : seed-p, seed-s, preemptive (wrong answer only), mistake (appended wrong step), or none
        (the clean run only: clean accuracy, no injection, no attacked or detector calls).
    sigma : share of the solution's steps injected (released default 0.6).
    shots : few-shot exemplars, 0-3 (0: zero-shot).
    limit : the first ``limit`` questions (0: all).
    defence : none or self-review.
    detect : ask the detector LLM about every attacked and clean trace.
    keep : floor (released code: floor(sigma*T), at least 1) or ceil (the paper's ceil(sigma*T)).
    extraction : released (``The answer is:`` cues only) or lenient (also ``answer is`` without colon).
    prompt : chat (the released message layout, for instruction-tuned models) or plain (the same
        texts joined by blank lines into one text to continue, for base models such as Gemma 3 270M).
    max_tokens : new tokens for the target's solutions and reviews.
    assistant_max_tokens, detector_max_tokens : for the SEED-P assistant and the detector.
    chunk : prompts per cached ``generate`` call (what a killed run loses at most per stage); the
        default 128 is the local llama.cpp backend's batch (64 rows) times its default two contexts, so
        the harness never hands the backend a narrower batch than it can decode (docs/attack.md).
    """

    attack: Literal["seed-p", "seed-s", "preemptive", "mistake", "none"] = "seed-p"
    sigma: float = 0.6
    shots: int = 0
    limit: int = 200
    defence: Literal["none", "self-review"] = "none"
    detect: bool = True
    keep: Literal["floor", "ceil"] = "floor"
    extraction: Literal["released", "lenient"] = "released"
    prompt: Literal["chat", "plain"] = "chat"
    max_tokens: int = 256
    assistant_max_tokens: int = 256
    detector_max_tokens: int = 8
    chunk: int = 128

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma <= 1.0:
            raise ConfigError(f"option 'attack.sigma' must be in (0, 1]; got {self.sigma}")
        if not 0 <= self.shots <= MAX_SHOTS:
            raise ConfigError(f"option 'attack.shots' must be in [0, {MAX_SHOTS}]; got {self.shots}")
        if self.limit < 0:
            raise ConfigError(f"option 'attack.limit' must be >= 0 (0: all questions); got {self.limit}")
        if self.attack == "none" and self.defence != "none":
            raise ConfigError("option 'attack.defence' needs an attack; attack 'none' is the clean run only")
        for name in ("max_tokens", "assistant_max_tokens", "detector_max_tokens", "chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'attack.{name}' must be >= 1; got {getattr(self, name)}")


def segment(cfg: AttackConfig) -> str:
    """``attack=seed-p,sigma=0.6,shots=0``; ``,prompt=plain`` added for plain-text prompts (another prompt,
    so other results)."""
    plain = ",prompt=plain" if cfg.prompt != "chat" else ""
    return f"attack={cfg.attack},sigma={cfg.sigma:g},shots={cfg.shots}{plain}"


def dataset_label(dataset: str, arith: ArithConfig | None) -> str:
    """``arith-easy-1`` for generated problems (difficulty, steps), else the dataset's name."""
    return f"arith-{arith.difficulty}-{arith.steps}" if dataset == "arith" and arith else dataset


def check_options(options: dict[str, dict[str, str]]) -> AttackConfig:
    """Every scope checked (unknown keys and bad values are ConfigErrors) before any data is read."""
    from recwise.llm import GeneratorConfig

    cfg = config_from_dict(AttackConfig, options.get("attack", {}), where="attack")
    for scope in ("llm", "assistant", "detector"):
        config_from_dict(GeneratorConfig, options.get(scope, {}), where=scope)
    config_from_dict(ArithConfig, options.get("arith", {}), where="arith")
    return cfg


# ---------------------------------------------------------------------------------------------
# LLM calls: counted, chunked


def _counted(gen: Any) -> Any:
    from recwise.llm import counted

    return counted(gen)


def _plain(cfg: AttackConfig) -> bool:
    return cfg.prompt == "plain"


def _generate(gen: Any, prompts: list[Any], max_tokens: int, chunk: int, desc: str, progress: bool,
              stop: tuple[str, ...] = STOP, plain: bool = False) -> list[str]:
    from recwise.llm import GenerationParams

    if plain:
        prompts = [as_plain(p) for p in prompts]

    params = GenerationParams(max_tokens=max_tokens, stop=stop)
    usage: Usage = gen.backend.usage
    out: list[str] = []
    t0 = time.perf_counter()
    before = usage.calls
    starts = range(0, len(prompts), chunk)
    if progress and len(prompts) > chunk:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, leave=False)
    for i in starts:
        out += gen.generate(prompts[i:i + chunk], params)
    usage.cached += len(prompts) - (usage.calls - before)
    usage.seconds += time.perf_counter() - t0
    return out


def generators(model: str, options: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The target, assistant and detector generators; a role whose config equals the target's
    shares the target's object (one model load). The assistant and detector default to the target."""
    from recwise.llm import load_generator

    target_cfg = {**options.get("llm", {}), "model": model}
    made: dict[str, Any] = {}
    out = {}
    for role in ("target", "assistant", "detector"):
        cfg = target_cfg if role == "target" else {**target_cfg, **options.get(role, {})}
        key = json.dumps(cfg, sort_keys=True)
        if key not in made:
            made[key] = _counted(load_generator(cfg))
        out[role] = made[key]
    return out


# ---------------------------------------------------------------------------------------------
# the run


def _status(j: bool | None) -> str:
    return "correct" if j is True else "wrong" if j is False else "unparsable"


def _seed_p(problems: list[Problem], cfg: AttackConfig, gen: Any, seed: int, progress: bool,
            records: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """SEED-P's three assistant stages, then the fallback; returns (injected, preemptive) per question."""
    pl = _plain(cfg)
    first = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction(p.kind) + p.question}]
             for p in problems]
    solved = _generate(gen, first, cfg.assistant_max_tokens, cfg.chunk, "seed-p solve", progress, plain=pl)
    second = [m + [{"role": "assistant", "content": s or "(no answer)"},
                   {"role": "user", "content": modify_turn(p.kind)}] for m, s, p in zip(first, solved, problems)]
    rewrites = _generate(gen, second, cfg.assistant_max_tokens, cfg.chunk, "seed-p rewrite", progress,
                         plain=pl)
    mod_qs = [modified_question(r, p) for r, p in zip(rewrites, problems)]
    mod_problems = [Problem(p.id + "~llm", q, p.answer, p.kind) for p, q in zip(problems, mod_qs)]
    third = [chat(p.kind, clean_query(mp, cfg.shots)) for p, mp in zip(problems, mod_problems)]
    mod_solutions = _generate(gen, third, cfg.assistant_max_tokens, cfg.chunk, "seed-p solve rewrite", progress,
                              plain=pl)
    out = []
    for p, q, sol, rewrite, rec in zip(problems, mod_qs, mod_solutions, rewrites, records):
        pred = extract_answer(sol, p.kind, lenient=cfg.extraction == "lenient")
        same = judge(sol, p.answer, p.kind, lenient=cfg.extraction == "lenient") is True
        source = "assistant"
        unchanged = " ".join(q.split()).lower() == " ".join(p.question.split()).lower()
        if not q.strip() or unchanged or pred is None or pred == "" or same:
            fb = perturb_problem(p, seed)
            if fb is not None:
                q, sol, source = fb.question, numbered(fb.solution, fb.answer), "fallback"
            else:
                source = "assistant-unusable"
        rec.update(modified_question=q, modified_solution=sol, injection_source=source,
                   assistant_rewrite=rewrite)
        out.append((kept_steps(sol, cfg.sigma, cfg.keep), preemptive_of(sol)))
    return out


def _own_trace(p: Problem, clean: str, cfg: AttackConfig) -> tuple[str, str]:
    """The target's kept clean steps, or the gold chain's where the clean trace has no number."""
    prefix = kept_steps(clean, cfg.sigma, cfg.keep)
    if any(ch.isdigit() for ch in prefix) or not p.solution:
        return prefix, "own-trace"
    return kept_steps(numbered(p.solution, p.answer), cfg.sigma, cfg.keep), "gold-chain"


def _injections(problems: list[Problem], clean_out: list[str], cfg: AttackConfig, gens: dict[str, Any], seed: int,
                progress: bool, records: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    if cfg.attack == "seed-p":
        return _seed_p(problems, cfg, gens["assistant"], seed, progress, records)
    out: list[tuple[str, str | None]] = []
    for p, clean, rec in zip(problems, clean_out, records):
        rng = random.Random(f"{cfg.attack}:{seed}:{p.id}")
        if cfg.attack == "preemptive":
            wrong = wrong_answer(p, rng)
            rec["injection_source"] = "wrong-answer" if wrong is not None else "none"
            out.append(("", wrong))
            continue
        prefix, source = _own_trace(p, clean, cfg)
        if cfg.attack == "mistake":
            rec["injection_source"] = source
            out.append((appended_mistake(prefix, rng), None))
            continue
        steps = prefix.rstrip().split("\n\n") if prefix.strip() else []
        altered = alter_step(steps[-1], rng) if steps else None
        if altered is None:
            rec["injection_source"] = "unaltered"  # no number in the kept steps: counted, injected as is
            out.append((prefix, None))
        else:
            rec["injection_source"] = source
            out.append(("\n\n".join(steps[:-1] + [altered]) + "\n\n", None))
    return out


def _flagged(text: str) -> bool | None:
    from recwise.llm import parse_choice

    ans = parse_choice(text, ["Yes", "No"])
    return None if ans is None else ans == "Yes"


def run(
    problems: list[Problem],
    cfg: AttackConfig,
    *,
    model: str,
    dataset: str,
    seed: int = 0,
    options: dict[str, dict[str, str]] | None = None,
    gens: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    data_key: str | None = None,
) -> list[ResultRow]:
    """Run one attack cell; return its rows and, with ``out_dir``, write ``results.csv``,
    ``attacks.jsonl`` and ``run.json``. ``gens`` (role -> Generator) may be passed in (tests)."""
    options = options or {}
    if cfg.attack not in (*ATTACKS, "none"):
        raise ConfigError(f"unknown attack {cfg.attack!r}; one of {[*ATTACKS, 'none']}")
    t0 = time.perf_counter()
    gens = {r: _counted(g) for r, g in (gens or generators(model, options)).items()}
    problems = problems[:cfg.limit] if cfg.limit else problems
    lenient = cfg.extraction == "lenient"
    target = gens["target"]

    def judged(outs: list[str]) -> list[bool | None]:
        return [judge(o, p.answer, p.kind, lenient=lenient) if o.strip() else None for o, p in zip(outs, problems)]

    records: list[dict[str, Any]] = [{"id": p.id, "question": p.question, "gold": p.answer, "kind": p.kind}
                                     for p in problems]
    clean_prompts = [chat(p.kind, clean_query(p, cfg.shots)) for p in problems]
    clean_out = _generate(target, clean_prompts, cfg.max_tokens, cfg.chunk, "clean", progress, plain=_plain(cfg))
    clean_j = judged(clean_out)
    if cfg.attack == "none":  # the clean run only
        for rec, p, co, cj in zip(records, problems, clean_out, clean_j):
            rec.update(clean_output=co, clean_answer=extract_answer(co, p.kind, lenient=lenient),
                       clean_status=_status(cj))
        n_q = max(len(problems), 1)
        only: dict[str, float] = {
            "clean_accuracy": sum(j is True for j in clean_j) / n_q, "questions": float(len(problems)),
            "clean_correct": float(sum(j is True for j in clean_j)),
            "clean_unparsable": float(sum(j is None for j in clean_j)),
            "empty_output_rate": sum(not o.strip() for o in clean_out) / n_q}
        known = [c is True for c in (arithmetic_consistent(t) for t in clean_out) if c is not None]
        only["consistent_rate_clean"] = sum(known) / len(known) if known else float("nan")
        return _finish(only, records, gens, cfg, t0, model=model, dataset=dataset, seed=seed, options=options,
                       out_dir=out_dir, data_key=data_key)
    inj = _injections(problems, clean_out, cfg, gens, seed, progress, records)
    att_prompts = [chat(p.kind, attacked_query(p, cfg.shots, text, pre)) for p, (text, pre) in zip(problems, inj)]
    att_out = _generate(target, att_prompts, cfg.max_tokens, cfg.chunk, f"{cfg.attack} attacked", progress,
                        plain=_plain(cfg))
    att_j = judged(att_out)
    visible = [(f"The answer is: {pre}\n\n" if pre is not None else "") + text + out
               for (text, pre), out in zip(inj, att_out)]
    for rec, p, co, cj, (text, pre), ao, aj in zip(records, problems, clean_out, clean_j, inj, att_out, att_j):
        rec.update(clean_output=co, clean_answer=extract_answer(co, p.kind, lenient=lenient), clean_status=_status(cj),
                   injected=text, preemptive=pre, attacked_output=ao,
                   attacked_answer=extract_answer(ao, p.kind, lenient=lenient), attacked_status=_status(aj),
                   empty_output=not ao.strip())
    m = attack_metrics(clean_j, att_j)
    values: dict[str, float] = m.as_dict()
    sources = [r.get("injection_source", "") for r in records]
    n = max(len(problems), 1)
    if cfg.attack == "seed-p":
        values["rewrite_unusable_rate"] = sum(s != "assistant" for s in sources) / n
        values["fallback_rate"] = sum(s == "fallback" for s in sources) / n
    values["uninjected_rate"] = sum(s in ("unaltered", "none") for s in sources) / n
    values["empty_output_rate"] = sum(not o.strip() for o in att_out) / n

    # rule-based stealth: is the visible trace arithmetically consistent (among traces with an equation)?
    for name, traces in (("consistent_rate", visible), ("consistent_rate_clean", clean_out)):
        checks = [arithmetic_consistent(t) for t in traces]
        known = [c for c in checks if c is not None]
        values[name] = sum(known) / len(known) if known else float("nan")
        if name == "consistent_rate":
            for rec, c in zip(records, checks):
                rec["attacked_consistent"] = c
    if cfg.detect:
        det = gens["detector"]
        prompts = [detector_prompt(p.question, t) for p, t in zip(problems, visible)]
        prompts += [detector_prompt(p.question, t) for p, t in zip(problems, clean_out)]
        answers = _generate(det, prompts, cfg.detector_max_tokens, cfg.chunk, "detector", progress, stop=(),
                            plain=_plain(cfg))
        flags = [_flagged(a) for a in answers]
        att_flags, clean_flags = flags[:len(problems)], flags[len(problems):]
        values["detection_rate"] = sum(f is True for f in att_flags) / n
        values["detection_rate_clean"] = sum(f is True for f in clean_flags) / n
        values["detector_unparsed_rate"] = sum(f is None for f in flags) / (2 * n)
        for rec, a, f in zip(records, answers[:len(problems)], att_flags):
            rec.update(detector_output=a, detector_flagged=f)
    if cfg.defence == "self-review":
        review = [pr + [{"role": "assistant", "content": o or "(no answer)"},
                        {"role": "user", "content": review_turn(p.kind)}]
                  for pr, o, p in zip(att_prompts, att_out, problems)]
        rev_out = _generate(target, review, cfg.max_tokens, cfg.chunk, "self-review", progress, plain=_plain(cfg))
        rev_j = judged(rev_out)
        defended = [r if r is not None else a for r, a in zip(rev_j, att_j)]  # no answer in the review: keep the old
        dm = attack_metrics(clean_j, defended)
        values["defended_accuracy"] = dm.attacked_accuracy
        values["defended_asr"] = dm.asr
        for rec, o, j, d in zip(records, rev_out, rev_j, defended):
            rec.update(review_output=o, review_status=_status(j), defended_status=_status(d))

    return _finish(values, records, gens, cfg, t0, model=model, dataset=dataset, seed=seed, options=options,
                   out_dir=out_dir, data_key=data_key)


def _finish(values: dict[str, float], records: list[dict[str, Any]], gens: dict[str, Any], cfg: AttackConfig,
            t0: float, *, model: str, dataset: str, seed: int, options: dict[str, dict[str, str]],
            out_dir: Path | None, data_key: str | None) -> list[ResultRow]:
    """Cost figures, the rows, and with ``out_dir`` the three output files."""
    usage = {role: vars(g.backend.usage).copy() for role, g in gens.items()}
    distinct = {id(g): g for g in gens.values()}
    values["llm_calls"] = float(sum(g.backend.usage.calls for g in distinct.values()))
    values["llm_tokens"] = float(sum(g.backend.usage.tokens for g in distinct.values()))
    wall = time.perf_counter() - t0
    values["wall_seconds"] = wall
    label = dataset
    seg = segment(cfg)
    rows = [ResultRow(TASK, label, model, seed, "test", seg, k, float(v)) for k, v in values.items()]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_results(out_dir / "results.csv", rows)
        atomic_write_text(out_dir / "attacks.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        info = {"task": TASK, "dataset": label, "model": model, "seed": seed, "segment": seg,
                "attack_config": config_to_dict(cfg), "options": options, "data_key": data_key,
                "config_hash": config_hash(cfg, {"options": options, "model": model, "dataset": label}),
                "version": recwise.__version__, "usage": usage, "wall_seconds": wall,
                "fingerprints": {role: g.backend.fingerprint for role, g in gens.items()}, "metrics": values}
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=str))
    return rows

