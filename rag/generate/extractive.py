"""The extractive backend: the passages' own sentences that best answer the question, each cited.

Example:
    >>> from rag.embed import load_embedder
    >>> from rag.generate.prompt import Passage
    >>> generator = ExtractiveGenerator(load_embedder("e5-small"), BM25Tokenizer())
    >>> "".join(generator.stream(GenerationRequest("How long is the warranty?", [Passage(1, "g.pdf", 3, "The warranty lasts two years. It is blue.")])))
    'The warranty lasts two years. [1]'
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from rag.embed import Embedder, Role
from rag.embed.base import LANGUAGE_OFFSET_SCALE
from rag.generate.base import GenerationRequest
from rag.generate.prompt import quoted_header
from rag.generate.units import answer_units, asks_for_date, asks_for_number, gives_quantity, new_date, new_numbers
from rag.specifics import specifics_of
from rag.text import BM25Tokenizer, held_share, language_of, normalise


def word_share(sentences: list[set[str]], question: set[str], local_idf: bool = True) -> np.ndarray:
    """Each sentence's share of the question's words. With ``local_idf`` each word weighs
    ``log(1 + n / (1 + sentences holding it))`` over these ``n`` sentences: the topic's name, which
    most retrieved sentences repeat, counts less than the words that ask for something in particular
    ("天敌", "墓碑").

    Example:
        >>> word_share([{"quokka", "island"}, {"quokka", "eat", "leaves"}], {"quokka", "eat"}).round(2).tolist()
        [0.42, 1.0]
    """
    if not question:
        return np.zeros(len(sentences))
    words = sorted(question)
    held = np.array([[word in s for word in words] for s in sentences], dtype=np.float64).reshape(len(sentences), len(words))
    weights = np.log1p(len(sentences) / (1 + held.sum(axis=0))) if local_idf else np.ones(len(words))
    return held @ weights / weights.sum()


@dataclass
class _Sentence:
    passage: int
    position: int
    text: str
    tokens: set[str]


class ExtractiveGenerator:
    """Picks up to ``max_sentences`` answer units (sentences and table rows, see
    :mod:`rag.generate.units`) by relevance (embedding similarity, weighted by how well the embedder reads
    the question, plus the share of the question's words they contain, plus ``number_weight`` for a unit
    with a number the question lacks when it asks for a quantity, a date or a version) with MMR against
    repetition, and prints them best first, each with its [n]: the answer leads with the unit that
    answers. Units far below the best one (``cutoff``) are left out. Nothing is chosen (the pipeline then
    answers "not found") when the question asks for a quantity and no chosen unit states one, or when the
    leading unit, in the question's language, shares none of its words besides the names in it (where units
    in another language were chosen too, the units beside the point are dropped and those lead instead).

    It never follows instructions inside documents: it only copies sentences and table cells out of them.
    """

    name = "extractive"
    context_window = 100_000

    def __init__(self, embedder: Embedder, tokenizer: BM25Tokenizer, max_sentences: int = 5,
                 diversity: float = 0.3, dense_weight: Callable[[str], float] | None = None,
                 semantic_weight: float = 0.5, cutoff: float = 0.4, rank_discount: float = 0.1,
                 local_idf: bool = True, number_weight: float = 0.6) -> None:
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.max_sentences = max_sentences
        self.diversity = diversity
        self._dense_weight = dense_weight
        self.semantic_weight = semantic_weight
        self.cutoff = cutoff
        self.rank_discount = rank_discount
        """Relevance is divided by ``1 + rank_discount * (passage rank - 1)``: later passages count less."""
        self.local_idf = local_idf
        """Weigh the question's words by how few candidate sentences hold them (see :func:`word_share`)."""
        self.number_weight = number_weight
        """Added to the relevance of a unit with a number the question lacks, when it asks for a number."""

    def count_tokens(self, text: str) -> int:
        return len(text)

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int = 128) -> str:
        raise NotImplementedError("the extractive backend selects sentences; it does not write text")

    def select(self, question: str, passages) -> list[_Sentence]:  # type: ignore[no-untyped-def]
        sentences = [
            _Sentence(p.n, unit.position, unit.text, set(self.tokenizer.tokenize(unit.text)))
            for p in passages for unit in answer_units(p.text)
        ]
        unique = {s.text: s for s in reversed(sentences)}  # the same line in two passages: quoted from the first
        sentences = [s for s in sentences if len(s.tokens) >= 3 and unique[s.text] is s]
        if not sentences:
            return []
        query_tokens = set(self.tokenizer.tokenize(question))
        asked = language_of(question)
        languages = [language_of(s.text) for s in sentences]
        overlap = word_share([s.tokens for s in sentences], query_tokens, self.local_idf)
        weight = self.semantic_weight * (self._dense_weight(question) if self._dense_weight else 1.0)
        question_vector = self.embedder.encode([question], Role.QUERY)[0]
        sentence_vectors = self.embedder.encode([s.text for s in sentences], Role.PASSAGE)
        similarity = sentence_vectors @ question_vector + [self.embedder.language_offset(asked, lang, LANGUAGE_OFFSET_SCALE)
                                                           for lang in languages]
        # cosines of one embedder sit in a narrow band (e5: 0.7-0.95): rescaled over the candidates, the
        # closest sentence scores 1 and the median one 0, so meaning weighs as much as shared words and
        # off-topic sentences from lower passages do not stretch the scale
        floor, top = float(np.median(similarity)), float(similarity.max())
        semantic = np.clip((similarity - floor) / (top - floor), 0.0, 1.0) if top - floor > 1e-6 else np.ones_like(similarity)
        # a sentence in another language shares few words with the question: its meaning stands in for them,
        # at the same discount as its cosine's offset, so that the question's language wins a near tie
        other = np.array([lang != asked for lang in languages])
        overlap = np.where(other, np.maximum(overlap, LANGUAGE_OFFSET_SCALE * semantic), overlap)
        relevance = overlap + weight * semantic
        if self.number_weight and asks_for_number(question):
            # "when" is answered by a date, not by any number
            gives = new_date if asks_for_date(question) else new_numbers
            relevance = relevance + self.number_weight * np.array([gives(s.text, question) for s in sentences])
        rank_prior = np.array([1.0 / (1 + self.rank_discount * (s.passage - 1)) for s in sentences])
        relevance = relevance * rank_prior
        chosen: list[int] = []
        while len(chosen) < min(self.max_sentences, len(sentences)):
            redundancy = (sentence_vectors @ sentence_vectors[chosen].T).max(axis=1) if chosen else 0
            mmr = (1 - self.diversity) * relevance - self.diversity * redundancy
            if chosen:
                mmr[chosen] = -np.inf
            best = int(np.argmax(mmr))
            if relevance[best] <= 0 or (chosen and relevance[best] < self.cutoff * relevance[chosen[0]]):
                break
            chosen.append(best)
        if asks_for_number(question) and not any(gives_quantity(sentences[i].text, question) for i in chosen):
            return []  # asked for a quantity, a date or a version, and no relevant unit states one
        names = {t for name in specifics_of(question).names for t in self.tokenizer.tokenize(name)}
        wanted = query_tokens - names  # what the question asks about, besides what it names

        def beside(i: int) -> bool:
            return languages[i] == asked and self._off_topic(question, wanted, sentences[i])

        if chosen and beside(chosen[0]):
            # a lead beside the point: with units in another language to answer, they go first; else nothing
            chosen = [i for i in chosen if not beside(i)] if any(languages[i] != asked for i in chosen) else []
        return [sentences[i] for i in chosen]

    @staticmethod
    def _off_topic(question: str, wanted: set[str], unit: _Sentence) -> bool:
        """Whether a unit shares none of the ``wanted`` words (the question's, besides the names in it): it
        is about what the question names, not about what it asks ("what was the vote" answered by the
        case's caption). A unit that states a quantity asked for is exempt ("how many were killed": "157
        fatalities")."""
        if asks_for_number(question) and gives_quantity(unit.text, question):
            return False
        text = normalise(unit.text)
        return bool(wanted) and not any(held_share(t, unit.tokens, text) for t in wanted)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The chosen sentences, each with its [n]; first a header line when the leading one is in another
        language than the question (an English question answered from Chinese passages)."""
        yield from self.render(request.question, self.select(request.question, request.passages), request.stop)

    @staticmethod
    def render(question: str, chosen: list[_Sentence], stop: threading.Event | None = None) -> Iterator[str]:
        """The text of an answer made of ``chosen`` sentences (see :meth:`stream`)."""
        header = quoted_header(question, chosen[0].text) if chosen else None
        if header:
            yield header + "\n"
        for i, sentence in enumerate(chosen):
            if stop is not None and stop.is_set():
                return
            yield f"{' ' if i else ''}{sentence.text} [{sentence.passage}]"
