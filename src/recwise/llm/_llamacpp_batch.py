"""Batched decoding for the llama.cpp backend: many sequences in one llama context.

llama-cpp-python's ``Llama`` decodes one sequence per context, so each new token of each row is a
matrix-vector product over all the weights. Here up to ``width`` rows share one context, each with
its own KV-cache stream (``seq_id``), and one ``llama_decode`` call advances all of them by a token:
the weights are read once per step for the whole batch (matrix-matrix work). Rows enter as slots
free up (continuous batching): a new row's prompt is evaluated in the same ``llama_decode`` call as
the next tokens of the rows already running.

Everything around the model is llama-cpp-python's own so that texts match its ``create_completion``
and ``create_chat_completion`` (and its OpenAI-compatible server): chats are rendered and
tokenised by the chat handler of the ``Llama`` object (recorded, not run), plain prompts get the
same BOS/EOS rule, and the loop that turns tokens into text (end-of-generation tokens, the
multi-byte UTF-8 guard, stop strings in list order, ``max_tokens``) is a copy of its
``_create_completion``.

Token choice happens in numpy on the logits:

- greedy: ``argmax`` (the first of equal maxima, as llama.cpp's greedy sampler);
- sampled: :class:`RowSampler`, temperature then top-p, from a ``numpy`` PCG64 stream seeded with
  the row's own seed, one uniform draw per token. A row's tokens are a function of its own logits
  and its own stream only, so they do not depend on which rows share its batch (as long as
  llama.cpp computes each row's logits independently of the others: tested).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recwise.llm._generator import Completion, LLMError, Row, text_only

__all__ = ["BatchDecoder", "Prepared", "RowSampler", "prepare_row"]

# KV-cache cells one batched context may hold in all (rows x cells per row); bounds its memory
# (SmolLM2: about 23 KB a cell, so 32768 cells = 0.75 GB) by narrowing the batch for long rows.
MAX_CELLS = 32768
_TOP_P_CANDIDATES = 256  # tokens sorted first for top-p; the full sort only if they hold < top_p


class RowSampler:
    """Temperature + top-p sampling from one row's own random stream.

    ``pick(logits)`` returns a token id. The stream is ``numpy.random.Generator(PCG64(seed))`` and
    every call draws exactly one uniform number, so the k-th token of a row depends on its seed,
    on k and on its own logits only. Probabilities are computed in float64.
    """

    def __init__(self, temperature: float, top_p: float, seed: int) -> None:
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def pick(self, logits: np.ndarray) -> int:
        z = logits.astype(np.float64) / self.temperature
        z -= z.max()
        p = np.exp(z)
        p /= p.sum()
        u = self.rng.random()
        if self.top_p >= 1.0:
            ids = np.arange(p.size)
            kept = p
        else:
            k = min(_TOP_P_CANDIDATES, p.size)
            cand = np.argpartition(-p, k - 1)[:k] if k < p.size else np.arange(p.size)
            ids = cand[np.lexsort((cand, -p[cand]))]  # by probability, then by id: a total order
            if p[ids].sum() < self.top_p and k < p.size:
                ids = np.lexsort((np.arange(p.size), -p))
            mass = np.cumsum(p[ids])
            ids = ids[: int(np.searchsorted(mass, self.top_p)) + 1]
            kept = p[ids]
        cum = np.cumsum(kept)
        i = int(np.searchsorted(cum, u * cum[-1], side="right"))
        return int(ids[min(i, ids.size - 1)])

    def __call__(self, input_ids: Any, scores: np.ndarray) -> np.ndarray:
        """As a llama-cpp-python logits processor: every logit but the picked token's set to -inf."""
        token = self.pick(scores)
        out = np.full_like(scores, -np.inf)
        out[token] = 0.0
        return out


@dataclass
class Prepared:
    """A row as token ids, with the stop strings llama-cpp-python would use for it."""

    index: int
    tokens: list[int]
    stop: list[bytes]
    max_tokens: int
    sampler: RowSampler | None


class _CapturedError(Exception):
    def __init__(self, prompt: list[int], stop: Any) -> None:
        super().__init__("captured")
        self.prompt = prompt
        self.stop = stop


class _Recorder:
    """Stands in for a ``Llama`` in its chat handler and records the ``create_completion`` call."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Any:
        raise _CapturedError(list(kwargs["prompt"]), kwargs.get("stop"))


def prompt_tokens(llm: Any, row: Row) -> tuple[list[int], list[str]]:
    """Token ids and stop strings of a row, exactly as ``create_(chat_)completion`` would make them."""
    user_stop = list(row.params.stop)
    if isinstance(row.prompt, str):
        model = llm._model
        bos, cls, sep = llm.token_bos(), model.token_cls(), model.token_sep()
        first = [cls if cls != -1 else bos]
        if not model.add_bos_token() or first[:1] == [-1]:
            first = []
        last = [] if (not model.add_eos_token() and sep == -1) else [sep if sep != -1 else llm.token_eos()]
        body = llm.tokenize(row.prompt.encode("utf-8"), add_bos=False, special=True) if row.prompt else []
        return first + body + last, user_stop
    from llama_cpp import llama_chat_format

    handler: Any = (llm.chat_handler or llm._chat_handlers.get(llm.chat_format)
               or llama_chat_format.get_chat_completion_handler(llm.chat_format))
    try:
        handler(llama=_Recorder(llm), messages=text_only(row.prompt, "llamacpp"), stop=user_stop or None,
                max_tokens=row.params.max_tokens, temperature=0.0)
    except _CapturedError as got:
        stop = got.stop
        return got.prompt, ([] if stop is None else [stop] if isinstance(stop, str) else list(stop))
    raise LLMError("llama.cpp: the chat handler did not produce a prompt")  # pragma: no cover


def prepare_row(llm: Any, index: int, row: Row, context: int) -> Prepared:
    tokens, stop = prompt_tokens(llm, row)
    if not tokens:
        tokens = [llm.token_bos()]
    if len(tokens) >= context:
        raise LLMError(f"llama.cpp: Requested tokens ({len(tokens)}) exceed context window of {context} "
                       "(raise option 'context' or shorten the prompt)")
    p = row.params
    sampler = None if p.greedy else RowSampler(p.temperature, p.top_p, row.seed)
    max_tokens = min(p.max_tokens, context - len(tokens))
    return Prepared(index, tokens, [s.encode("utf-8") for s in stop], max_tokens, sampler)


@dataclass
class _Seq:
    """A row in a slot: its prompt still to evaluate, then the text so far (create_completion's loop)."""

    row: Prepared
    todo: list[int]
    pos: int = 0
    next_token: int | None = None
    completion: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    multibyte_fix: int = 0


class BatchDecoder:
    """One llama context that decodes up to ``width`` rows together, each on its own KV stream.

    ``cells`` is the context of each row (prompt + new tokens), a multiple of 256. Not thread-safe:
    one decoder per thread.
    """

    def __init__(self, llm: Any, width: int, cells: int, threads: int, n_batch: int = 512) -> None:
        import llama_cpp

        self._lc = llama_cpp
        self.llm = llm
        self.width = width
        self.cells = cells
        self.n_batch = n_batch
        self.threads = threads
        # the Llama object's own context settings (flash attention off, RoPE settings), so that a row
        # gets the same logits as through Llama.create_completion; then the batch layout
        params = llama_cpp.llama_context_params()
        ctypes.memmove(ctypes.byref(params), ctypes.byref(llm.context_params), ctypes.sizeof(params))
        params.n_ctx = width * cells
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = width
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = False  # one KV stream per row: attention only over the row's own cells
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if not ctx:
            raise LLMError(f"llama.cpp could not create a context of {width} rows x {cells} cells")
        self.ctx = ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.n_vocab = int(llm.n_vocab())
        self.vocab = llm._model.vocab
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._buf = ctypes.create_string_buffer(64)
        self._closed = False

    def set_threads(self, threads: int) -> None:
        """Decode on ``threads`` CPU threads from the next step on (the context and its cache stay)."""
        if threads != self.threads:
            self._lc.llama_set_n_threads(self.ctx, threads, threads)
            self.threads = threads

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lc.llama_batch_free(self.batch)
            self._lc.llama_free(self.ctx)

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            n = self._lc.llama_token_to_piece(self.vocab, token, self._buf, len(self._buf), 0, False)
            piece = self._pieces[token] = self._buf.raw[:n] if n >= 0 else b""
        return piece

    def _text(self, seq: _Seq) -> bytes:
        out = bytes(seq.text)
        if seq.completion and seq.completion[0] == self.llm.token_bos() and out[:1] == b" ":
            out = out[1:]
        return out

    def _accept(self, seq: _Seq, token: int) -> Completion | None:
        """create_completion's loop body for one new token: the completion when the row is done."""
        row = seq.row
        if self._lc.llama_vocab_is_eog(self.vocab, token):
            return self._done(seq, self._text(seq), "stop")
        seq.completion.append(token)
        seq.text += self._piece(token)
        all_text = self._text(seq)
        for k, char in enumerate(all_text[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    seq.multibyte_fix = num - k
        if seq.multibyte_fix > 0:
            seq.multibyte_fix -= 1
            if seq.pos + 1 < self.cells:
                return None
        else:
            any_stop = [s for s in row.stop if s in all_text]
            if any_stop:
                return self._done(seq, all_text[: all_text.index(any_stop[0])], "stop")
        if len(seq.completion) >= row.max_tokens or seq.pos + 1 >= self.cells:
            return self._done(seq, all_text, "length")
        return None

    @staticmethod
    def _done(seq: _Seq, text: bytes, reason: str) -> Completion:
        return Completion(text.decode("utf-8", errors="ignore"), len(seq.row.tokens), len(seq.completion), reason)

    def run(self, take: Callable[[], Prepared | None], give: Callable[[int, Completion], None]) -> None:
        """Decode rows from ``take()`` (None: no more) until all are done; ``give(index, completion)``."""
        lc = self._lc
        lc.llama_memory_clear(self.mem, True)
        slots: list[_Seq | None] = [None] * self.width
        more = True
        while True:
            if more:
                for s in range(self.width):
                    if slots[s] is None:
                        nxt = take()
                        if nxt is None:
                            more = False
                            break
                        if len(nxt.tokens) + 1 > self.cells:
                            raise LLMError(f"llama.cpp: a row of {len(nxt.tokens)} prompt tokens does not fit "
                                           f"{self.cells} cells (raise option 'context')")
                        lc.llama_memory_seq_rm(self.mem, s, -1, -1)
                        slots[s] = _Seq(nxt, list(nxt.tokens))
            active = [s for s in range(self.width) if slots[s] is not None]
            if not active:
                return
            # prompts first, each in calls of its own: llama.cpp splits a call that mixes sequences
            # of unequal length into pieces, which changes the order of floating-point sums (and,
            # now and then, a greedy token) compared with evaluating the prompt alone
            outputs: list[int] = []
            for s in active:
                seq = slots[s]
                assert seq is not None
                while seq.todo:
                    chunk = seq.todo[: self.n_batch]
                    del seq.todo[: len(chunk)]
                    for j, tok in enumerate(chunk):
                        self._put(j, tok, seq.pos, s, not seq.todo and j == len(chunk) - 1)
                        seq.pos += 1
                    self._decode(len(chunk))
                if seq.next_token is None:
                    logits = np.ctypeslib.as_array(lc.llama_get_logits(self.ctx), shape=(1, self.n_vocab))
                    self._step(slots, [s], logits, give)
                else:
                    outputs.append(s)
            if not outputs:
                continue
            # then one call that advances every running row by a token
            for n, s in enumerate(outputs):
                seq = slots[s]
                assert seq is not None and seq.next_token is not None
                self._put(n, seq.next_token, seq.pos, s, True)
                seq.pos += 1
            self._decode(len(outputs))
            logits = np.ctypeslib.as_array(lc.llama_get_logits(self.ctx), shape=(len(outputs), self.n_vocab))
            self._step(slots, outputs, logits, give)

    def _put(self, n: int, token: int, pos: int, seq: int, output: bool) -> None:
        b = self.batch
        b.token[n] = token
        b.pos[n] = pos
        b.n_seq_id[n] = 1
        b.seq_id[n][0] = seq
        b.logits[n] = 1 if output else 0

    def _decode(self, n: int) -> None:
        self.batch.n_tokens = n
        rc = self._lc.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise LLMError(f"llama.cpp: llama_decode failed with code {rc} ({n} tokens)")

    def _step(self, slots: list[_Seq | None], outputs: list[int], logits: np.ndarray,
              give: Callable[[int, Completion], None]) -> None:
        """Choose the next token of each row in ``outputs`` (row i of ``logits``) and retire finished rows."""
        seqs = [slots[s] for s in outputs]
        greedy = [i for i, seq in enumerate(seqs) if seq is not None and seq.row.sampler is None]
        best = np.argmax(logits[greedy], axis=1) if greedy else []
        chosen = dict(zip(greedy, (int(t) for t in best)))
        for i, s in enumerate(outputs):
            seq = seqs[i]
            assert seq is not None
            sampler = seq.row.sampler
            token = chosen[i] if sampler is None else sampler.pick(logits[i])
            done = self._accept(seq, token)
            if done is None:
                seq.next_token = token
            else:
                give(seq.row.index, done)
                slots[s] = None


def cells_for(rows: Sequence[Prepared]) -> int:
    """Cells per row that fit every row (prompt + new tokens + slack), rounded up to 256."""
    need = max(len(r.tokens) + r.max_tokens + 8 for r in rows)
    return -(-need // 256) * 256


class Feed:
    """Rows handed out longest prompt first to any number of decoder threads."""

    def __init__(self, rows: Sequence[Prepared]) -> None:
        self._rows = sorted(rows, key=lambda r: -len(r.tokens))
        self._next = 0
        self._lock = threading.Lock()
        self.out: list[Completion | None] = [None] * (max((r.index for r in rows), default=-1) + 1)

    def take(self) -> Prepared | None:
        with self._lock:
            if self._next >= len(self._rows):
                return None
            self._next += 1
            return self._rows[self._next - 1]

    def give(self, index: int, completion: Completion) -> None:
        self.out[index] = completion
