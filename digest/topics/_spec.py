"""What the topic filter reads: a topic as the curator wrote it, the noise profile it competes with, and what it says."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..models import Decision

DEFAULT_THRESHOLD = 0.5  # on a calibrated probability: keep a post when it is more likely on-topic than not


class TopicSpec(Protocol):
    """What the filter reads from a configured topic (the config model satisfies it)."""

    name: str
    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...]
    exclude: tuple[str, ...]
    threshold: float | None


@dataclass(frozen=True, slots=True)
class NoiseProfile:
    """Generic off-topic chatter that competes with every topic; its words never count against a topic that uses them."""

    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...] = ()


DEFAULT_NOISE = NoiseProfile(
    description=(
        "Everyday chatter and entertainment: what someone ate or drank, meals, snacks, recipes, "
        "restaurants and coffee; flowers, gardens, pets and the weather; sports, matches, teams, players and "
        "scores; video games and streaming; celebrities, movies, TV shows and music; fashion, outfits, beauty and "
        "shopping deals; holidays, travel, parties, birthdays and weddings; gadgets and phones; personal life, "
        "friends, jokes and memes."
    ),
    keywords=(
        # food and drink
        "food", "foodie", "lunch", "dinner", "breakfast", "brunch", "snack", "recipe", "delicious", "yummy",
        "tasty", "restaurant", "pizza", "burger", "tacos", "sushi", "cake", "cupcake", "dessert", "chocolate",
        "coffee", "latte", "beer", "wine", "cocktail", "baking",
        # home, pets, weather
        "flowers", "garden", "gardening", "pets", "dog", "puppy", "cat", "kitten", "weather", "sunny", "rainy",
        # sports
        "sports", "football", "soccer", "basketball", "baseball", "hockey", "NFL", "NBA", "MLB", "touchdown",
        "playoffs", "championship", "stadium", "league",
        # games and streaming
        "gaming", "gamer", "video game", "Xbox", "PlayStation", "Nintendo", "Fortnite", "Twitch", "esports",
        # screen, stage and celebrities
        "celebrity", "celebrities", "movie", "film", "trailer", "TV show", "episode", "Netflix", "actor",
        "actress", "Hollywood", "Oscars", "red carpet",
        # music
        "music", "song", "album", "concert", "singer", "rapper", "playlist", "lyrics", "#nowplaying",
        # fashion, beauty, shopping
        "fashion", "outfit", "dress", "shoes", "sneakers", "jeans", "handbag", "makeup", "lipstick", "hairstyle",
        "shopping", "discount", "coupon", "giveaway",
        # holidays and personal life
        "holiday", "vacation", "beach", "party", "birthday", "wedding", "weekend", "lol", "lmao", "omg", "meme",
        "selfie",
        # gadgets
        "tech", "technology", "gadget", "smartphone", "iPhone", "Android", "laptop", "crypto", "bitcoin",
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one post got its decision: per topic, the terms that moved its score most, as (term, weight), and the
    readers' accepted examples that moved it, as (example text, label, TF-IDF cosine, log-odds it added)."""

    text: str
    decision: Decision
    terms: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    examples: dict[str, tuple[tuple[str, bool, float, float], ...]] = field(default_factory=dict)
