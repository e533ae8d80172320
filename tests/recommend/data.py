"""A small catalogue with two tastes, and users who each have one of them (made up here)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from dialoop.recommend import EventIn, Item

SPACE = ["Orbit", "Nebula", "Comet", "Rocket", "Moonbase", "Pulsar", "Quasar", "Starship",
         "Asteroid", "Galaxy", "Eclipse", "Supernova", "Satellite", "Meteor", "Cosmos",
         "Wormhole", "Red Planet", "Lunar Dawn", "Solar Wind", "Deep Field"]
COOKING = ["Sourdough", "Risotto", "Ramen", "Paella", "Curry", "Dumplings", "Tagine",
           "Pasta Night", "Brunch", "Pastry", "Barbecue", "Tapas", "Soup Season", "Noodles",
           "Spice Road", "Bread Oven", "Sweet Tooth", "Grill Masters", "Green Kitchen",
           "Fresh Market"]


def catalogue() -> list[Item]:
    items = [Item(f"s{n}", title, f"A book about {title.lower()} and space travel.",
                  {"genre": ["space"], "author": [f"A{n % 5}"]})
             for n, title in enumerate(SPACE)]
    items += [Item(f"c{n}", title, f"A cookbook: {title.lower()} recipes for home cooks.",
                   {"genre": ["cooking"], "author": [f"B{n % 5}"]})
              for n, title in enumerate(COOKING)]
    return items


def interactions(users: int = 30, seed: int = 0) -> list[EventIn]:
    """Half the users like space books, half cooking; each rates 8 of their kind 4-5 stars
    and one of the other kind 1 star. Shuffled: in time, the users' events interleave."""
    rng = random.Random(seed)
    out = []
    for u in range(users):
        mine, other = ("s", "c") if u % 2 == 0 else ("c", "s")
        for n in rng.sample(range(20), 8):
            out.append(EventIn(f"u{u}", f"{mine}{n}", "rating", float(rng.choice([4, 5]))))
        out.append(EventIn(f"u{u}", f"{other}{rng.randrange(20)}", "rating", 1.0))
    rng.shuffle(out)
    return out


def write_catalogue(path: Path) -> Path:
    with path.open("w") as f:
        for it in catalogue():
            f.write(json.dumps({"id": it.id, "title": it.title, "text": it.text,
                                **it.attributes}) + "\n")
    return path
