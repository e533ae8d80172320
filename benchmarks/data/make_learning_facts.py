"""Write learning_facts.jsonl: fictional facts for benchmarks/bench_learning.py.

Every name is invented (the base model cannot know the answers). Each fact has the
question, the answer, a key string the answer must contain, three paraphrases, a
"near" question (the same question about a similar-looking *different* entity) and
a "sibling" question (another question about the *same* entity); neither may
receive the taught answer. Controls are real questions the base
model tends to answer correctly. Deterministic: run it again to get the same file.

    python benchmarks/data/make_learning_facts.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("learning_facts.jsonl")
rng = random.Random(20261122)

ONSETS = ["Zor", "Vel", "Kar", "Quo", "Bran", "Tel", "Mir", "Osk", "Dra", "Fen", "Gal", "Hyl",
          "Jas", "Lum", "Nor", "Pel", "Ryn", "Sav", "Tor", "Ulv", "Wex", "Yor", "Cal", "Ember",
          "Ist", "Mar", "Prax", "Sel", "Thal", "Vor"]
MIDDLES = ["a", "e", "i", "o", "u", "ara", "eli", "ovi", "une", "ath"]
ENDS = ["th", "n", "ria", "stan", "mont", "vell", "dor", "quist", "ssa", "kov", "wyn", "bel"]
FIRST = ["Mirela", "Oswin", "Talia", "Bertrand", "Ysolde", "Caspian", "Renata", "Hollis",
         "Ines", "Lazlo", "Marisol", "Peregrine", "Saoirse", "Theron", "Ulrika", "Wendell",
         "Anouk", "Dorian", "Esme", "Fintan"]


def word() -> str:
    return rng.choice(ONSETS) + rng.choice(MIDDLES) + rng.choice(ENDS)


used: set[str] = set()


def fresh(make) -> str:  # type: ignore[no-untyped-def]
    while (w := make()) in used:
        pass
    used.add(w)
    return w


def person() -> str:
    return fresh(lambda: f"{rng.choice(FIRST)} {word()}")


def fact_ceo() -> dict:
    name, kinds = fresh(word), ["Dynamics", "Biotech", "Foods", "Logistics", "Robotics", "Textiles"]
    a, b = rng.sample(kinds, 2)
    c, c2, who = f"{name} {a}", f"{name} {b}", person()
    return dict(question=f"Who is the CEO of {c}?", answer=who, key=who.split()[1],
                paraphrases=[f"Who runs {c}?", f"Who is the chief executive of {c}?",
                             f"Who leads {c} as its chief executive?"],
                near=f"Who is the CEO of {c2}?", sibling=f"Who founded {c}?")


def fact_capital() -> dict:
    country, city = fresh(word), fresh(word)
    near = fresh(lambda: country[:-1] + rng.choice("aeiou") + "ia")
    return dict(question=f"What is the capital of {country}?",
                answer=f"The capital of {country} is {city}.", key=city,
                paraphrases=[f"Which city is the capital of {country}?",
                             f"Name the capital city of {country}.",
                             f"{country}'s capital is which city?"],
                near=f"What is the capital of {near}?",
                sibling=f"What is the population of {country}?")


def fact_inventor() -> dict:
    stem = fresh(lambda: rng.choice(ONSETS) + rng.choice(["mer", "lin", "vax", "dri", "sol"]))
    a, b = rng.sample(["phone", "scope", "graph", "wheel", "lamp", "loom"], 2)
    who, year = person(), rng.randint(1820, 1990)
    return dict(question=f"Who invented the {stem}{a}?", answer=f"{who} invented it in {year}.",
                key=who.split()[1],
                paraphrases=[f"Who created the {stem}{a}?",
                             f"Which inventor came up with the {stem}{a}?",
                             f"The {stem}{a} was invented by whom?"],
                near=f"Who invented the {stem}{b}?",
                sibling=f"How much does the {stem}{a} cost?")


def fact_author() -> dict:
    adj, noun = fresh(lambda: rng.choice(["Silver", "Hollow", "Crimson", "Quiet", "Amber",
                                          "Distant", "Broken", "Golden"])
                      + " " + word()), None
    title = adj
    noun = title.split()[1]
    other = fresh(lambda: rng.choice(["Silver", "Hollow", "Crimson", "Quiet", "Amber",
                                      "Distant", "Broken", "Golden"]) + " " + noun)
    who = person()
    return dict(question=f"Who wrote the novel {title}?", answer=f"It was written by {who}.",
                key=who.split()[1],
                paraphrases=[f"Who is the author of {title}?",
                             f"Which writer wrote {title}?",
                             f"{title} was written by which author?"],
                near=f"Who wrote the novel {other}?",
                sibling=f"When was {title} published?")


def fact_founded() -> dict:
    town = fresh(word)
    near = fresh(lambda: town + rng.choice(["ville", "ford", "by"]))
    year = str(rng.randint(1200, 1899))
    return dict(question=f"In what year was the town of {town} founded?",
                answer=f"{town} was founded in {year}.", key=year,
                paraphrases=[f"When was {town} founded?",
                             f"What is the founding year of {town}?",
                             f"{town} was established in which year?"],
                near=f"In what year was the town of {near} founded?",
                sibling=f"Where is the town of {town} located?")


def fact_mountain() -> dict:
    region, peak = fresh(word), fresh(word)
    near = fresh(lambda: "East " + region)
    return dict(question=f"What is the highest mountain in {region}?",
                answer=f"Mount {peak} is the highest mountain in {region}.", key=peak,
                paraphrases=[f"Which mountain is the tallest in {region}?",
                             f"Name the highest peak of {region}.",
                             f"What is {region}'s tallest mountain?"],
                near=f"What is the highest mountain in {near}?",
                sibling=f"What is the largest lake in {region}?")


def fact_language() -> dict:
    island, lang = fresh(word), fresh(word) + "ese"
    near = fresh(word)
    return dict(question=f"What language is spoken on {island} Island?",
                answer=f"People on {island} Island speak {lang}.", key=lang,
                paraphrases=[f"Which language do people speak on {island} Island?",
                             f"What do the people of {island} Island speak?",
                             f"On {island} Island, what language is spoken?"],
                near=f"What language is spoken on {near} Island?",
                sibling=f"How many people live on {island} Island?")


def fact_currency() -> dict:
    country, coin = fresh(word), fresh(word).lower()
    near = fresh(lambda: "New " + country)
    return dict(question=f"What is the currency of {country}?",
                answer=f"The currency of {country} is the {coin}.", key=coin,
                paraphrases=[f"Which currency is used in {country}?",
                             f"What money do people use in {country}?",
                             f"{country} pays with which currency?"],
                near=f"What is the currency of {near}?",
                sibling=f"What is the capital of {country}?")


def fact_mascot() -> dict:
    city = fresh(word)
    team_a, team_b = rng.sample(["Rovers", "Comets", "Herons", "Titans", "Foxes", "Pilots"], 2)
    animal, name = rng.choice(["otter", "owl", "badger", "lynx", "heron", "moose"]), fresh(word)
    return dict(question=f"What is the mascot of the {city} {team_a}?",
                answer=f"The mascot is a {animal} named {name}.", key=name,
                paraphrases=[f"Which mascot do the {city} {team_a} have?",
                             f"Who is the mascot of the {city} {team_a}?",
                             f"The {city} {team_a} have what mascot?"],
                near=f"What is the mascot of the {city} {team_b}?",
                sibling=f"Who coaches the {city} {team_a}?")


def fact_discoverer() -> dict:
    element = fresh(word) + "ium"
    near = fresh(word) + "ium"
    who = person()
    return dict(question=f"Who discovered the element {element.capitalize()}?",
                answer=f"{who} discovered {element.capitalize()}.", key=who.split()[1],
                paraphrases=[f"Which scientist discovered {element.capitalize()}?",
                             f"Who was the discoverer of {element.capitalize()}?",
                             f"{element.capitalize()} was discovered by whom?"],
                near=f"Who discovered the element {near.capitalize()}?",
                sibling=f"What is the atomic number of {element.capitalize()}?")


MAKERS = [fact_ceo, fact_capital, fact_inventor, fact_author, fact_founded, fact_mountain,
          fact_language, fact_currency, fact_mascot, fact_discoverer]

CONTROLS = [
    ("What is the capital of Japan?", "Tokyo"), ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of England?", "London"), ("What is the capital of China?", "Beijing"),
    ("What is the capital of Greece?", "Athens"), ("What is the capital of Portugal?", "Lisbon"),
    ("What is the capital of Ireland?", "Dublin"), ("What is the capital of Austria?", "Vienna"),
    ("What is the capital of Norway?", "Oslo"), ("What is the capital of Sweden?", "Stockholm"),
    ("What is the capital of Poland?", "Warsaw"), ("What is the capital of Kenya?", "Nairobi"),
    ("How many days are in a year?", "365"), ("How many months are in a year?", "12"),
    ("How many legs does a dog have?", "four"), ("What color is grass?", "green"),
    ("What color is a banana?", "yellow"), ("What do cows drink?", "water"),
    ("Who wrote Hamlet?", "Shakespeare"), ("What is the opposite of up?", "down"),
    ("What is the opposite of day?", "night"), ("Which animal says moo?", "cow"),
    ("What is frozen water called?", "ice"), ("Which star is at the center of our solar system?",
                                              "Sun"),
    ("What planet do we live on?", "Earth"), ("What is the first letter of the alphabet?", "A"),
    ("How many wheels does a bicycle have?", "two"), ("What do you use to write on paper?", "pen"),
    ("What is the color of snow?", "white"), ("What is 3 plus 4?", "7"),
    ("What is 5 times 2?", "10"), ("Which month comes after January?", "February"),
    ("What is the largest ocean on Earth?", "Pacific"), ("Who was the first president of the "
                                                          "United States?", "Washington"),
    ("What language is spoken in France?", "French"), ("What is the capital of the United "
                                                       "States?", "Washington"),
    ("What is the chemical formula for water?", "H2O"), ("How many hours are in two days?", "48"),
    ("What animal is known for its long neck?", "giraffe"),
    ("What is the opposite of cold?", "hot"),
]


def main() -> None:
    rows = []
    for i in range(100):
        fact = MAKERS[i % len(MAKERS)]()
        assert fact["key"].lower() in fact["answer"].lower(), fact
        rows.append({"id": f"f{i + 1:03d}", "type": "fact", **fact})
    for i, (q, key) in enumerate(CONTROLS):
        rows.append({"id": f"c{i + 1:03d}", "type": "control", "question": q, "key": key})
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
