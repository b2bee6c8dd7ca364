"""POPGym card games in JAX: RepeatPrevious, RepeatFirst, CountRecall, Autoencode.

Faithful ports of popgym 1.0.7 (Morad et al., "POPGym: Benchmarking Partially
Observable Reinforcement Learning", ICLR 2023): the same action spaces, episode
lengths, per-step rewards and terminal flags. Every episode has a return in
``[-1, 1]`` and an optimal policy scores exactly ``1.0``. Episodes only terminate
(``truncated`` is always False), as in popgym.

Cards. A game uses ``num_decks`` standard decks, ``N = 52 * num_decks`` cards with
ids ``0 .. N-1``. As in popgym's ``Deck``: ``suit(c) = c % 4``, ``color(c) = c % 2``,
``rank(c) = (c % 52) // 4``. The hidden state is the order in which the cards are
dealt, ``cards[i]`` being the i-th card dealt (``cards[0]`` at reset). ``reset``
draws a uniformly random permutation; ``reset_with(cards)`` injects one. popgym
deals from the end of its shuffled ``deck.idx``, so the cards of a popgym episode
are ``deck.idx[::-1]`` (read right after ``reset``).

Observations are flat float32 one-hot vectors (popgym's ``Discrete`` observation
becomes one one-hot block, ``MultiDiscrete``/``Tuple`` observations become their
one-hot blocks concatenated, in popgym's order).

Step counter. ``state.t`` is the number of steps taken; the reward of the step that
makes the counter ``t`` is described below with that ``t`` (``t = 1`` is the first step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.core import (
    Box,
    Discrete,
    Environment,
    TimeStep,
    check_action,
    end_on_invalid_action,
)
from larvax.validation import Int, OneOf, field, require, validate

Array = jax.Array

DECK_SIZE = 52
NUM_SUITS = 4
NUM_RANKS = 13
NUM_COLORS = 2


def suit(card: Array) -> Array:
    """Suit index 0..3 of card ids (popgym ``Deck.suits_idx``)."""
    return jnp.asarray(card) % NUM_SUITS


def color(card: Array) -> Array:
    """Color index 0..1 of card ids (popgym ``Deck.colors_idx``)."""
    return jnp.asarray(card) % NUM_COLORS


def rank(card: Array) -> Array:
    """Rank index 0..12 of card ids (popgym ``Deck.ranks_idx``)."""
    return (jnp.asarray(card) % DECK_SIZE) // NUM_SUITS


_DECK_TYPES = {
    "colors": (color, NUM_COLORS),
    "suits": (suit, NUM_SUITS),
    "ranks": (rank, NUM_RANKS),
}


def _check_cards(cards, num_cards: int, name: str = "cards") -> Array:
    """Validate an injected deal order (concrete arrays only; traced ones pass)."""
    cards = jnp.asarray(cards)
    if cards.shape != (num_cards,):
        raise ValueError(
            f"{name} must have shape ({num_cards},) (the deal order of all cards), "
            f"got shape {cards.shape}"
        )
    if not isinstance(cards, jax.core.Tracer):
        c = np.asarray(cards)
        if not np.issubdtype(c.dtype, np.integer) or not np.array_equal(
            np.sort(c), np.arange(num_cards)
        ):
            raise ValueError(
                f"{name} must be a permutation of the card ids 0..{num_cards - 1}, got {c!r}"
            )
    return cards.astype(jnp.int32)


def _ts(obs, reward, terminated, truncated=False) -> TimeStep:
    return TimeStep(
        observation=obs,
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(terminated, bool),
        truncated=jnp.asarray(truncated, bool),
        info={},
    )


def _one_hot(i, n) -> Array:
    return jax.nn.one_hot(i, n, dtype=jnp.float32)


class CardState(NamedTuple):
    """Hidden state of the single-deck games.

    cards: int32 [N], card ids in deal order. t: int32, steps taken.
    """

    cards: Array
    t: Array


@dataclass(frozen=True)
class CardParams:
    """Static configuration of a card game (hashable; no array leaves, so jit keeps it static)."""

    num_decks: int = field(1, Int(ge=1))
    k: int = field(0, Int(ge=0))  # RepeatPrevious only
    deck_type: str = field("colors", OneOf(*_DECK_TYPES))  # CountRecall only

    def __post_init__(self):
        validate(self)
        n = DECK_SIZE * self.num_decks
        require(
            self, "k", self.k < n, f"an int < 52 * num_decks = {n} (k must be below the card count)"
        )


jax.tree_util.register_static(CardParams)


class _CardGame(Environment):
    """Shared machinery of the one-deck games; subclasses define the rules."""

    def __init__(self, params: CardParams):
        self._params = params

    @property
    def default_params(self) -> CardParams:
        return self._params

    def _p(self, params) -> CardParams:
        return self._params if params is None else params

    @property
    def name(self) -> str:
        """The registered name (e.g. ``RepeatPreviousEasy``) or the class name."""
        return getattr(self, "variant_name", None) or type(self).__name__

    @staticmethod
    def num_cards(params: CardParams) -> int:
        return DECK_SIZE * params.num_decks

    @property
    def max_episode_length(self) -> int:
        """Steps in every episode (popgym's ``max_episode_length``)."""
        return self._episode_length(self._params)

    def reset(self, key, params=None):
        params = self._p(params)
        cards = jax.random.permutation(key, self.num_cards(params))
        return self.reset_with(cards, params)

    def reset_with(self, cards, params=None):
        """Reset to the deal order ``cards`` (int [N], a permutation of 0..N-1)."""
        params = self._p(params)
        cards = _check_cards(cards, self.num_cards(params))
        state = CardState(cards=cards, t=jnp.int32(0))
        return state, _ts(self._obs(state, params), 0.0, False)

    def _card(self, state: CardState, i) -> Array:
        n = state.cards.shape[0]
        return state.cards[jnp.clip(i, 0, n - 1)]


class RepeatPrevious(_CardGame):
    """Output the suit of the card dealt ``k`` cards before the newest one.

    popgym ``RepeatPrevious(num_decks, k)``. Observation: one-hot suit of the newest
    card, float32 [4]. Action: ``Discrete(4)``, a suit. Episode: ``N - 1`` steps, step
    ``t`` deals ``cards[t]``; terminated at ``t = N - 1``. Reward at step ``t``:
    ``+1/(N-k)`` if ``action == suit(cards[t-k])`` else ``-1/(N-k)`` for ``t >= k``,
    0 for ``t < k``. Easy: 1 deck, k = 4; Medium: 2, 32; Hard: 3, 64.
    """

    def __init__(self, num_decks: int = 1, k: int = 4):
        params = CardParams(num_decks=num_decks, k=k)
        require(params, "k", params.k >= 1, "an int >= 1 (RepeatPrevious)")
        super().__init__(params)

    def _episode_length(self, params):
        return self.num_cards(params) - 1

    def _obs(self, state, params):
        return _one_hot(suit(self._card(state, state.t)), NUM_SUITS)

    def step(self, key, state, action, params=None):
        params = self._p(params)
        invalid = check_action(self.action_space(params), action, f"{self.name}.step")
        n, k = self.num_cards(params), params.k
        t = state.t + 1
        scale = 1.0 / (n - k)
        correct = jnp.asarray(action) == suit(self._card(state, t - k))
        reward = jnp.where(t >= k, jnp.where(correct, scale, -scale), 0.0)
        new = CardState(state.cards, t)
        return new, end_on_invalid_action(_ts(self._obs(new, params), reward, t >= n - 1), invalid)

    def observation_space(self, params=None):
        return Box(0.0, 1.0, (NUM_SUITS,), jnp.float32)

    def action_space(self, params=None):
        return Discrete(NUM_SUITS)


class RepeatFirst(_CardGame):
    """Output the suit of the first card, every step.

    popgym ``RepeatFirst(num_decks)``. Observation: one-hot suit of the newest card,
    float32 [4]. Action: ``Discrete(4)``. Episode: ``N - 1`` steps, step ``t`` deals
    ``cards[t]``; terminated at ``t = N - 1``. Reward at every step: ``+1/(N-1)`` if
    ``action == suit(cards[0])`` else ``-1/(N-1)``. Easy: 1 deck, Medium: 8, Hard: 16.
    """

    def __init__(self, num_decks: int = 1):
        super().__init__(CardParams(num_decks=num_decks))

    def _episode_length(self, params):
        return self.num_cards(params) - 1

    def _obs(self, state, params):
        return _one_hot(suit(self._card(state, state.t)), NUM_SUITS)

    def step(self, key, state, action, params=None):
        params = self._p(params)
        invalid = check_action(self.action_space(params), action, f"{self.name}.step")
        n = self.num_cards(params)
        t = state.t + 1
        scale = 1.0 / (n - 1)
        correct = jnp.asarray(action) == suit(state.cards[0])
        new = CardState(state.cards, t)
        return new, end_on_invalid_action(
            _ts(self._obs(new, params), jnp.where(correct, scale, -scale), t >= n - 1), invalid
        )

    def observation_space(self, params=None):
        return Box(0.0, 1.0, (NUM_SUITS,), jnp.float32)

    def action_space(self, params=None):
        return Discrete(NUM_SUITS)


class Autoencode(_CardGame):
    """Watch a sequence of cards, then output their suits in reverse order.

    popgym ``Autoencode(num_decks)``. popgym's observation ``Tuple(Discrete(2) mode,
    Discrete(4) suit)`` becomes float32 [6] = ``[one_hot(mode, 2), one_hot(suit, 4)]``
    with mode 1 = watch, 0 = play (popgym's ``Mode``). Action: ``Discrete(4)``.

    Episode: ``2N - 1`` steps. Reset shows ``(watch, suit(cards[0]))``; watch steps
    ``t = 1 .. N-1`` deal ``cards[t]`` (reward 0, action ignored); the step dealing the
    last card ``cards[N-1]`` already shows mode 0 (play). Play steps ``t = N .. 2N-1``
    ask for the cards in reverse: ``+1/N`` if ``action == suit(cards[2N-1-t])`` else
    ``-1/N``, and show ``(0, 0)`` (popgym shows suit 0 while playing). Terminated at
    ``t = 2N - 1``. Easy: 1 deck, Medium: 2, Hard: 3.
    """

    def __init__(self, num_decks: int = 1):
        super().__init__(CardParams(num_decks=num_decks))

    def _episode_length(self, params):
        return 2 * self.num_cards(params) - 1

    def _obs(self, state, params):
        n = self.num_cards(params)
        t = state.t
        watching = t < n - 1  # mode after t steps
        card_suit = jnp.where(t <= n - 1, suit(self._card(state, t)), 0)
        return jnp.concatenate(
            [_one_hot(watching.astype(jnp.int32), 2), _one_hot(card_suit, NUM_SUITS)]
        )

    def step(self, key, state, action, params=None):
        params = self._p(params)
        invalid = check_action(self.action_space(params), action, f"{self.name}.step")
        n = self.num_cards(params)
        t = state.t + 1
        playing = state.t >= n - 1  # the mode at the start of this step
        correct = jnp.asarray(action) == suit(self._card(state, 2 * n - 1 - t))
        scale = 1.0 / n
        reward = jnp.where(playing, jnp.where(correct, scale, -scale), 0.0)
        new = CardState(state.cards, t)
        return new, end_on_invalid_action(
            _ts(self._obs(new, params), reward, t >= 2 * n - 1), invalid
        )

    def observation_space(self, params=None):
        return Box(0.0, 1.0, (2 + NUM_SUITS,), jnp.float32)

    def action_space(self, params=None):
        return Discrete(NUM_SUITS)


class CountRecallState(NamedTuple):
    """Hidden state of CountRecall.

    values, queries: int32 [N], the deal orders of the value deck and the query deck.
    counts: int32 [d], how often each value category has been dealt. t: int32, steps.
    """

    values: Array
    queries: Array
    counts: Array
    t: Array


class CountRecall(Environment):
    """Say how many times the previously queried category has been dealt so far.

    popgym ``CountRecall(num_decks, deck_type)``. Two decks of ``N = 52 * num_decks``
    cards, a value deck and a query deck, are dealt in parallel, one card of each per
    step; a card's category is its color, suit or rank (``deck_type``, ``d`` = 2, 4 or 13
    categories). Observation: popgym's ``MultiDiscrete([d, d])`` (value, query) as float32
    [2d] = ``[one_hot(value), one_hot(query)]``. Action: ``Discrete(N/d + 1)``, a count.

    Episode: ``N - 1`` steps; reset deals card 0 of each deck; step ``t`` deals card ``t``.
    Reward at step ``t``: ``+1/(N-1)`` if ``action`` equals the number of value cards
    among ``values[0..t-1]`` in the category of ``queries[t-1]`` (the query shown before
    the step), else ``-1/(N-1)``. Terminated at ``t = N - 1``.
    Easy: 1 deck, colors; Medium: 2 decks, suits; Hard: 4 decks, ranks. (popgym's
    ``error_clamp`` argument is unused by its reward in 1.0.7 and is not ported.)
    """

    def __init__(self, num_decks: int = 1, deck_type: str = "colors"):
        self._params = CardParams(num_decks=num_decks, deck_type=deck_type)

    @property
    def default_params(self) -> CardParams:
        return self._params

    def _p(self, params):
        return self._params if params is None else params

    @property
    def name(self) -> str:
        """The registered name (e.g. ``RepeatPreviousEasy``) or the class name."""
        return getattr(self, "variant_name", None) or type(self).__name__

    @staticmethod
    def num_cards(params: CardParams) -> int:
        return DECK_SIZE * params.num_decks

    @staticmethod
    def num_categories(params: CardParams) -> int:
        return _DECK_TYPES[params.deck_type][1]

    def max_card_count(self, params=None) -> int:
        params = self._p(params)
        return self.num_cards(params) // self.num_categories(params)

    @property
    def max_episode_length(self) -> int:
        return self.num_cards(self._params) - 1

    def _category(self, card, params):
        return _DECK_TYPES[params.deck_type][0](card)

    def reset(self, key, params=None):
        params = self._p(params)
        kv, kq = jax.random.split(key)
        n = self.num_cards(params)
        return self.reset_with(jax.random.permutation(kv, n), jax.random.permutation(kq, n), params)

    def reset_with(self, values, queries, params=None):
        """Reset to the deal orders ``values`` and ``queries`` (int [N] permutations)."""
        params = self._p(params)
        n = self.num_cards(params)
        values = _check_cards(values, n, "values")
        queries = _check_cards(queries, n, "queries")
        d = self.num_categories(params)
        counts = _one_hot(self._category(values[0], params), d).astype(jnp.int32)
        state = CountRecallState(values, queries, counts, jnp.int32(0))
        return state, _ts(self._obs(state, params), 0.0, False)

    def _obs(self, state, params):
        d = self.num_categories(params)
        i = jnp.clip(state.t, 0, state.values.shape[0] - 1)
        return jnp.concatenate(
            [
                _one_hot(self._category(state.values[i], params), d),
                _one_hot(self._category(state.queries[i], params), d),
            ]
        )

    def step(self, key, state, action, params=None):
        params = self._p(params)
        invalid = check_action(self.action_space(params), action, f"{self.name}.step")
        n, d = self.num_cards(params), self.num_categories(params)
        last = n - 1
        prev_query = self._category(state.queries[jnp.clip(state.t, 0, last)], params)
        prev_count = state.counts[prev_query]
        t = state.t + 1
        value = self._category(state.values[jnp.clip(t, 0, last)], params)
        counts = state.counts + _one_hot(value, d).astype(jnp.int32) * (t <= last)
        scale = 1.0 / (n - 1)
        reward = jnp.where(jnp.asarray(action) == prev_count, scale, -scale)
        new = CountRecallState(state.values, state.queries, counts, t)
        return new, end_on_invalid_action(_ts(self._obs(new, params), reward, t >= last), invalid)

    def observation_space(self, params=None):
        d = self.num_categories(self._p(params))
        return Box(0.0, 1.0, (2 * d,), jnp.float32)

    def action_space(self, params=None):
        return Discrete(self.max_card_count(params) + 1)


# ----------------------------------------------------------------------------- variants


CARD_VARIANTS = {
    "RepeatPreviousEasy": (RepeatPrevious, {"num_decks": 1, "k": 4}),
    "RepeatPreviousMedium": (RepeatPrevious, {"num_decks": 2, "k": 32}),
    "RepeatPreviousHard": (RepeatPrevious, {"num_decks": 3, "k": 64}),
    "RepeatFirstEasy": (RepeatFirst, {"num_decks": 1}),
    "RepeatFirstMedium": (RepeatFirst, {"num_decks": 8}),
    "RepeatFirstHard": (RepeatFirst, {"num_decks": 16}),
    "CountRecallEasy": (CountRecall, {"num_decks": 1, "deck_type": "colors"}),
    "CountRecallMedium": (CountRecall, {"num_decks": 2, "deck_type": "suits"}),
    "CountRecallHard": (CountRecall, {"num_decks": 4, "deck_type": "ranks"}),
    "AutoencodeEasy": (Autoencode, {"num_decks": 1}),
    "AutoencodeMedium": (Autoencode, {"num_decks": 2}),
    "AutoencodeHard": (Autoencode, {"num_decks": 3}),
}
"""popgym 1.0.7's difficulty levels: name -> (class, constructor arguments)."""
