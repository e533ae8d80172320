"""Write the two foreign graphs and their question sets (run once; the files are committed).

The graphs carry only their relations' own names (no labels, no aliases), as a graph
imported from elsewhere would. The questions were written before any tuning of the
relation matcher, and are not to be reworded to suit it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _key(label: str) -> str:
    return re.sub(r"\W+", "_", label.lower()).strip("_")


MOVIES = {  # title: (actors, directors, writers, year, genre)
    "Glass Harbor": (["Mira Castell", "Jonah Reyes"], ["Tomas Brandt"], ["Ilse Morgan"], 2011,
                     "Drama"),
    "Night of the Tides": (["Mira Castell", "Dev Okafor"], ["Rosa Lindqvist"],
                           ["Ilse Morgan", "Pavel Kura"], 2015, "Thriller"),
    "Copper Sky": (["Elena Voss", "Jonah Reyes"], ["Tomas Brandt"], ["Nadia Fenn"], 2008,
                   "Science Fiction"),
    "The Last Orchard": (["Elena Voss"], ["Pavel Kura"], ["Nadia Fenn"], 2019, "Drama"),
    "Silent Meridian": (["Dev Okafor"], ["Rosa Lindqvist"], ["Jonah Reyes"], 2013, "Comedy"),
    "Paper Lanterns": (["Nadia Fenn", "Mira Castell"], ["Ilse Morgan"], ["Tomas Brandt"], 2017,
                       "Comedy"),
}


def movie_graph() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    names = {n for a, d, w, _, g in MOVIES.values() for n in [*a, *d, *w, g]} | set(MOVIES)
    rows += [{"entity": _key(n), "label": n} for n in sorted(names)]
    for title, (actors, directors, writers, year, genre) in MOVIES.items():
        m = _key(title)
        rows += [{"subject": m, "relation": "starred_actors", "object": _key(a)} for a in actors]
        rows += [{"subject": m, "relation": "directed_by", "object": _key(d)} for d in directors]
        rows += [{"subject": m, "relation": "written_by", "object": _key(w)} for w in writers]
        rows.append({"subject": m, "relation": "release_year", "value": year})
        rows.append({"subject": m, "relation": "has_genre", "object": _key(genre)})
    return rows


MOVIE_QUESTIONS = [
    ("1-hop", "Who starred in Glass Harbor?", ["Mira Castell", "Jonah Reyes"]),
    ("1-hop", "Which actors appear in Copper Sky?", ["Elena Voss", "Jonah Reyes"]),
    ("1-hop", "Who acted in Silent Meridian?", ["Dev Okafor"]),
    ("1-hop", "Who are the actors of Paper Lanterns?", ["Nadia Fenn", "Mira Castell"]),
    ("1-hop", "What films does Elena Voss appear in?", ["Copper Sky", "The Last Orchard"]),
    ("1-hop", "Which movies did Dev Okafor star in?", ["Night of the Tides", "Silent Meridian"]),
    ("1-hop", "What movies has Mira Castell acted in?",
     ["Glass Harbor", "Night of the Tides", "Paper Lanterns"]),
    ("1-hop", "Who directed Copper Sky?", ["Tomas Brandt"]),
    ("1-hop", "Who is the director of The Last Orchard?", ["Pavel Kura"]),
    ("1-hop", "Which films did Rosa Lindqvist direct?", ["Night of the Tides", "Silent Meridian"]),
    ("1-hop", "Who wrote Glass Harbor?", ["Ilse Morgan"]),
    ("1-hop", "Who was the writer of Copper Sky?", ["Nadia Fenn"]),
    ("1-hop", "Which movies did Nadia Fenn write?", ["Copper Sky", "The Last Orchard"]),
    ("1-hop", "When was Silent Meridian released?", ["2013"]),
    ("1-hop", "What year did Paper Lanterns come out?", ["2017"]),
    ("1-hop", "What is the release year of The Last Orchard?", ["2019"]),
    ("1-hop", "What genre is Night of the Tides?", ["Thriller"]),
    ("1-hop", "What kind of film is Copper Sky?", ["Science Fiction"]),
    ("2-hop", "Who directed the films that Elena Voss starred in?",
     ["Tomas Brandt", "Pavel Kura"]),
    ("2-hop", "Which actors co-starred with Dev Okafor?", ["Mira Castell"]),
    ("2-hop", "Who wrote the movies directed by Tomas Brandt?", ["Ilse Morgan", "Nadia Fenn"]),
    ("2-hop", "When were the films directed by Rosa Lindqvist released?", ["2015", "2013"]),
    ("2-hop", "What genres are the movies Jonah Reyes acted in?", ["Drama", "Science Fiction"]),
    ("2-hop", "Who starred in the films written by Ilse Morgan?",
     ["Mira Castell", "Jonah Reyes", "Dev Okafor"]),
    ("2-hop", "Who directed the movies written by Nadia Fenn?", ["Tomas Brandt", "Pavel Kura"]),
    ("constraint", "Which films released after 2014 did Mira Castell star in?",
     ["Night of the Tides", "Paper Lanterns"]),
    ("constraint", "Which movies were released before 2010?", ["Copper Sky"]),
    ("constraint", "How many films did Tomas Brandt direct?", ["2"]),
    ("constraint", "Which of Elena Voss's films came out after 2010?", ["The Last Orchard"]),
    ("unanswerable", "What is the budget of Glass Harbor?", []),
    ("unanswerable", "Who composed the music for Copper Sky?", []),
    ("unanswerable", "Where was Mira Castell born?", []),
    ("unanswerable", "How tall is Jonah Reyes?", []),
    ("unanswerable", "What awards did Paper Lanterns win?", []),
    ("unanswerable", "Who produced Silent Meridian?", []),
]

COMPANIES = {  # name: (headquarters city, founded, {product: price})
    "Halvorsen Optics": ("Brisk Harbor", 1994, {"Lumen X2": 149, "Lumen Pro": 329,
                                                "Vista Lens": 89}),
    "Tarvik Motors": ("Oskarby", 2009, {"Tarvik E1": 24000, "Tarvik Cargo": 31000}),
    "Meridel Foods": ("Valmont", 1987, {"Sunoat Bar": 2, "Meridel Granola": 6}),
}
CITIES = {"Brisk Harbor": "Norland", "Valmont": "Norland", "Kestria": "Norland",
          "Oskarby": "Svelland", "Sundby": "Svelland"}
CAPITALS = {"Kestria": "Norland", "Sundby": "Svelland"}


def company_graph() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def entity(name: str, kind: str) -> None:
        rows.append({"entity": _key(name), "label": name, "type": kind})

    for country in sorted(set(CITIES.values())):
        entity(country, "Country")
    for city, country in CITIES.items():
        entity(city, "City")
        rows.append({"subject": _key(city), "relation": "locatedIn", "object": _key(country)})
    for city, country in CAPITALS.items():
        rows.append({"subject": _key(city), "relation": "capitalOf", "object": _key(country)})
    for name, (city, founded, products) in COMPANIES.items():
        entity(name, "Company")
        rows.append({"subject": _key(name), "relation": "headquarteredIn", "object": _key(city)})
        rows.append({"subject": _key(name), "relation": "foundedYear", "value": founded})
        for product, price in products.items():
            entity(product, "Product")
            rows.append({"subject": _key(name), "relation": "product", "object": _key(product)})
            rows.append({"subject": _key(product), "relation": "price", "value": price,
                         "unit": "EUR"})
    return rows


COMPANY_QUESTIONS = [
    ("1-hop", "Where is Halvorsen Optics headquartered?", ["Brisk Harbor"]),
    ("1-hop", "In which city is Tarvik Motors based?", ["Oskarby"]),
    ("1-hop", "Where are the headquarters of Meridel Foods?", ["Valmont"]),
    ("1-hop", "What products does Halvorsen Optics make?", ["Lumen X2", "Lumen Pro", "Vista Lens"]),
    ("1-hop", "Which products does Tarvik Motors sell?", ["Tarvik E1", "Tarvik Cargo"]),
    ("1-hop", "Who makes the Sunoat Bar?", ["Meridel Foods"]),
    ("1-hop", "Which company produces the Vista Lens?", ["Halvorsen Optics"]),
    ("1-hop", "How much does the Lumen Pro cost?", ["329"]),
    ("1-hop", "What is the price of Tarvik Cargo?", ["31000"]),
    ("1-hop", "Which country is Oskarby in?", ["Svelland"]),
    ("1-hop", "Where is Valmont located?", ["Norland"]),
    ("1-hop", "What is the capital of Norland?", ["Kestria"]),
    ("1-hop", "Kestria is the capital of which country?", ["Norland"]),
    ("1-hop", "Which companies are headquartered in Brisk Harbor?", ["Halvorsen Optics"]),
    ("1-hop", "When was Meridel Foods founded?", ["1987"]),
    ("2-hop", "In which country is Halvorsen Optics headquartered?", ["Norland"]),
    ("2-hop", "Which country is Tarvik Motors based in?", ["Svelland"]),
    ("2-hop", "Which companies are headquartered in Norland?", ["Halvorsen Optics",
                                                                "Meridel Foods"]),
    ("2-hop", "What do the products made by Meridel Foods cost?", ["2", "6"]),
    ("2-hop", "Which products are made by companies based in Oskarby?",
     ["Tarvik E1", "Tarvik Cargo"]),
    ("2-hop", "Where is the company that makes the Lumen X2 headquartered?", ["Brisk Harbor"]),
    ("3-hop", "What is the capital of the country where Halvorsen Optics is headquartered?",
     ["Kestria"]),
    ("3-hop", "What is the capital of the country in which Tarvik Motors has its headquarters?",
     ["Sundby"]),
    ("3-hop", "In which country is the maker of the Vista Lens headquartered?", ["Norland"]),
    ("constraint", "Which of Halvorsen Optics's products cost less than 200?",
     ["Lumen X2", "Vista Lens"]),
    ("constraint", "Which products of Tarvik Motors cost more than 25000?", ["Tarvik Cargo"]),
    ("constraint", "What is the cheapest product of Meridel Foods?", ["Sunoat Bar"]),
    ("constraint", "How many products does Halvorsen Optics make?", ["3"]),
    ("constraint", "Which companies were founded before 1990?", ["Meridel Foods"]),
    ("unanswerable", "Who is the CEO of Halvorsen Optics?", []),
    ("unanswerable", "How many employees does Tarvik Motors have?", []),
    ("unanswerable", "What is the population of Oskarby?", []),
    ("unanswerable", "What currency does Norland use?", []),
    ("unanswerable", "What is the weight of the Lumen Pro?", []),
    ("unanswerable", "Who founded Meridel Foods?", []),
]


def _write(folder: str, rows: list[dict[str, object]],
           questions: list[tuple[str, str, list[str]]]) -> None:
    out = HERE / folder
    out.mkdir(exist_ok=True)
    (out / "graph.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "questions.jsonl").write_text("".join(
        json.dumps({"id": i, "type": t, "question": q, "answers": a}) + "\n"
        for i, (t, q, a) in enumerate(questions, 1)))


if __name__ == "__main__":
    _write("movies", movie_graph(), MOVIE_QUESTIONS)
    _write("companies", company_graph(), COMPANY_QUESTIONS)
