"""Writes graph.jsonl: a small fictional world (no model has seen it) for KG QA.

Run from this folder: ``python make_graph.py``. The tables below are the source of
truth; graph.jsonl is generated from them and committed, so evaluation needs no step.
"""

from __future__ import annotations

import json
from pathlib import Path

RELATIONS = {
    "capital": ("capital", ["capital city"]),
    "population": ("population", ["inhabitants", "residents", "people live"]),
    "currency": ("currency", ["money"]),
    "country": ("country", ["located in", "lies in", "nation"]),
    "mayor": ("mayor", ["runs the city"]),
    "founded": ("founding year", ["founded", "established", "year founded", "set up"]),
    "founder": ("founder", ["founded by", "founded", "started", "established by"]),
    "birthplace": ("birthplace", ["born in", "place of birth", "born", "hometown"]),
    "birth_year": ("birth year", ["born", "year of birth", "year born"]),
    "spouse": ("spouse", ["married to", "husband", "wife", "married", "partner"]),
    "employer": ("employer", ["works for", "works at", "work for", "employed by", "work"]),
    "occupation": ("occupation", ["job", "profession", "living"]),
    "headquarters": ("headquarters", ["based in", "headquartered", "based", "head office"]),
    "ceo": ("chief executive", ["ceo", "runs", "leads", "head"]),
    "industry": ("industry", ["sector", "business"]),
    "maker": ("maker", ["made by", "manufacturer", "makes", "produces", "produced by", "make",
                        "manufactures", "sells"]),
    "price": ("price", ["cost", "costs", "cheap", "expensive", "priced", "how much"]),
    "category": ("category", ["kind of product"]),
    "weight": ("weight", ["weigh", "weighs", "heavy"]),
    "released": ("release year", ["released", "launched", "came out"]),
    "author": ("author", ["wrote", "written by", "writer", "write", "written"]),
    "published": ("publication year", ["published", "year published"]),
    "genre": ("genre", ["kind of book"]),
    "publisher": ("publisher", ["published by", "published", "publishes"]),
}

COUNTRIES = {  # name: capital, population, currency
    "Veloria": ("Port Alder", 4_200_000, "Veloran crown"),
    "Ostmark": ("Grauburg", 2_750_000, "Ostmark thaler"),
    "Kessaly": ("Amberly", 980_000, "Kessaly mark"),
}
CITIES = {  # name: country, population, founded, mayor
    "Port Alder": ("Veloria", 850_000, 1204, "Ilsa Varn"),
    "Lindhaven": ("Veloria", 310_000, 1388, "Oren Dask"),
    "Marrow Bay": ("Veloria", 95_000, 1702, "Petra Lumm"),
    "Grauburg": ("Ostmark", 640_000, 1122, "Henrik Sohl"),
    "Eskel": ("Ostmark", 210_000, 1460, "Dagna Roo"),
    "Amberly": ("Kessaly", 380_000, 1590, "Tavi Morrow"),
    "Quillon": ("Kessaly", 72_000, 1811, "Sela Brin"),
}
PEOPLE = {  # name: birthplace, birth year, occupation, employer or None, spouse or None
    "Mara Quell": ("Lindhaven", 1951, "novelist", None, "Tomas Brell"),
    "Tomas Brell": ("Grauburg", 1949, "architect", None, "Mara Quell"),
    "Ilsa Varn": ("Port Alder", 1968, "politician", None, "Anton Varn"),
    "Anton Varn": ("Eskel", 1966, "surgeon", None, "Ilsa Varn"),
    "Oren Dask": ("Lindhaven", 1972, "politician", None, None),
    "Petra Lumm": ("Marrow Bay", 1980, "politician", None, None),
    "Henrik Sohl": ("Grauburg", 1959, "politician", None, "Liv Sohl"),
    "Liv Sohl": ("Amberly", 1961, "painter", None, "Henrik Sohl"),
    "Dagna Roo": ("Eskel", 1975, "politician", None, None),
    "Tavi Morrow": ("Quillon", 1983, "politician", None, None),
    "Sela Brin": ("Amberly", 1970, "politician", None, None),
    "Juno Harrow": ("Port Alder", 1977, "engineer", "Brightwell Labs", "Caspar Ode"),
    "Caspar Ode": ("Quillon", 1974, "chemist", "Brightwell Labs", "Juno Harrow"),
    "Rhea Tolliver": ("Eskel", 1965, "engineer", "Kestrel Motors", None),
    "Bram Okoro": ("Grauburg", 1958, "designer", "Kestrel Motors", None),
    "Nell Fairweather": ("Amberly", 1988, "designer", "Lumen & Co", None),
    "Otto Kask": ("Marrow Bay", 1990, "engineer", "Lumen & Co", None),
    "Wren Castellan": ("Lindhaven", 1939, "novelist", None, None),
    "Ada Vossberg": ("Eskel", 1984, "novelist", None, None),
    "Felix Ambrose": ("Quillon", 1962, "publisher", "Tern Press", None),
    "Yara Senn": ("Port Alder", 1979, "banker", "Harbor Mutual", None),
}
COMPANIES = {  # name: headquarters, founded, founder, ceo, industry
    "Brightwell Labs": ("Port Alder", 2004, "Juno Harrow", "Caspar Ode", "kitchen appliances"),
    "Kestrel Motors": ("Grauburg", 1987, "Bram Okoro", "Rhea Tolliver", "electric bicycles"),
    "Lumen & Co": ("Amberly", 2011, "Nell Fairweather", "Otto Kask", "lighting"),
    "Tern Press": ("Lindhaven", 1921, "Wren Castellan", "Felix Ambrose", "publishing"),
    "Harbor Mutual": ("Marrow Bay", 1899, "Yara Senn", "Yara Senn", "insurance"),
}
PRODUCTS = {  # name: maker, price EUR, category, weight kg, release year
    "Nimbus Kettle": ("Brightwell Labs", 39.9, "kettle", 1.2, 2019),
    "Ember Toaster": ("Brightwell Labs", 54.5, "toaster", 2.1, 2020),
    "Drift Blender": ("Brightwell Labs", 89.0, "blender", 3.4, 2021),
    "Pebble Grinder": ("Brightwell Labs", 19.5, "coffee grinder", 0.8, 2018),
    "Kestrel Swift": ("Kestrel Motors", 1450.0, "electric bicycle", 21.0, 2016),
    "Kestrel Ridge": ("Kestrel Motors", 2290.0, "electric bicycle", 24.5, 2022),
    "Kestrel Pup": ("Kestrel Motors", 690.0, "children's bicycle", 11.0, 2020),
    "Halo Desk Lamp": ("Lumen & Co", 24.0, "lamp", 1.5, 2017),
    "Glowworm Nightlight": ("Lumen & Co", 9.99, "nightlight", 0.2, 2019),
    "Beacon Floor Lamp": ("Lumen & Co", 129.0, "lamp", 6.3, 2021),
    "Candela Bulb": ("Lumen & Co", 4.5, "light bulb", 0.1, 2015),
}
BOOKS = {  # name: author, year, genre, publisher
    "The Salt Orchard": ("Mara Quell", 1979, "literary fiction", "Tern Press"),
    "Winter Cartography": ("Mara Quell", 1986, "literary fiction", "Tern Press"),
    "The Glass Lighthouse": ("Mara Quell", 1994, "mystery", "Tern Press"),
    "Orchids at Dusk": ("Wren Castellan", 1962, "romance", "Tern Press"),
    "A Harbor of Bells": ("Wren Castellan", 1971, "historical fiction", "Tern Press"),
    "Ninefold": ("Ada Vossberg", 2015, "science fiction", "Tern Press"),
    "The Quiet Engine": ("Ada Vossberg", 2019, "science fiction", "Tern Press"),
}


def facts() -> list[dict]:
    out: list[dict] = []

    def entity(name: str, type_: str) -> None:
        out.append({"entity": name, "label": name, "type": type_})

    def rel(s: str, r: str, o: str) -> None:
        out.append({"subject": s, "relation": r, "object": o})

    def val(s: str, r: str, v: object, unit: str | None = None) -> None:
        out.append({"subject": s, "relation": r, "value": v} | ({"unit": unit} if unit else {}))

    for key, (label, aliases) in RELATIONS.items():
        out.append({"relation": key, "label": label, "aliases": aliases})
    for name, (capital, pop, currency) in COUNTRIES.items():
        entity(name, "Country")
        rel(name, "capital", capital)
        val(name, "population", pop)
        val(name, "currency", currency)
    for name, (country, pop, founded, mayor) in CITIES.items():
        entity(name, "City")
        rel(name, "country", country)
        val(name, "population", pop)
        val(name, "founded", founded)
        rel(name, "mayor", mayor)
    for name, (born, year, job, employer, spouse) in PEOPLE.items():
        entity(name, "Person")
        rel(name, "birthplace", born)
        val(name, "birth_year", year)
        val(name, "occupation", job)
        if employer:
            rel(name, "employer", employer)
        if spouse and (spouse, name) not in [(f.get("subject"), f.get("object")) for f in out
                                             if f.get("relation") == "spouse"]:
            rel(name, "spouse", spouse)
    for name, (hq, founded, founder, ceo, industry) in COMPANIES.items():
        entity(name, "Company")
        rel(name, "headquarters", hq)
        val(name, "founded", founded)
        rel(name, "founder", founder)
        rel(name, "ceo", ceo)
        val(name, "industry", industry)
    for name, (maker, price, category, weight, year) in PRODUCTS.items():
        entity(name, "Product")
        rel(name, "maker", maker)
        val(name, "price", price, "EUR")
        val(name, "category", category)
        val(name, "weight", weight, "kg")
        val(name, "released", year)
    for name, (author, year, genre, publisher) in BOOKS.items():
        entity(name, "Book")
        rel(name, "author", author)
        val(name, "published", year)
        val(name, "genre", genre)
        rel(name, "publisher", publisher)
    return out


if __name__ == "__main__":
    lines = [json.dumps(f, ensure_ascii=False) for f in facts()]
    Path(__file__).with_name("graph.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{sum(1 for f in facts() if 'subject' in f)} triples")
