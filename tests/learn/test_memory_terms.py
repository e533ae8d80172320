"""Key terms keep similar-looking questions about other things apart."""

from __future__ import annotations

from dialoop.learn.gate import answer_holds, near_variants, same_answer
from dialoop.learn.memory import key_terms, terms_match, terms_present


def test_names_are_key_terms_question_words_are_not() -> None:
    assert key_terms("Who is the CEO of Acme Biotech?") == ["acme", "biotech"]
    # CEO names the relation, not the entity: "Name the chief executive of IBM" asks it too.
    assert key_terms("Hi! I'm new here. Who is the CEO of IBM?") == ["ibm"]
    assert key_terms("Who is married to Senator Aldous Prynne?") == ["aldous", "prynne"]
    assert key_terms("What year was Zorvath founded in 1911?") == ["zorvath", "1911"]
    assert key_terms("how tall is the eiffel tower") == ["eiffel", "tower"]  # "tall": a relation


def test_a_paraphrase_keeps_the_terms_a_near_question_does_not() -> None:
    terms = key_terms("Where is Acme Biotech based?")
    assert terms_present(terms, "In which city is acme biotech's headquarters?")
    assert not terms_present(terms, "Where is Acme Foods based?")
    assert terms_present(["biotech"], "all the Biotechs")  # plural
    assert not terms_present(["acme"], "acne")
    lesson = "What is the highest mountain in Jasuwyn?"
    assert terms_match(key_terms(lesson), lesson, "Name the highest peak of Jasuwyn.")
    for near in ("What is the highest mountain in East Jasuwyn?",
                 "What is the highest mountain in Jasuwynia?"):
        assert not terms_match(key_terms(lesson), lesson, near)


def test_a_rewording_may_drop_the_ordinary_words_of_a_name_not_its_rare_ones() -> None:
    lesson = "What is the official language of the Republic of Tavessa?"
    terms = key_terms(lesson)
    assert terms == ["republic", "tavessa"]
    assert terms_match(terms, lesson, "Which language is official in Tavessa?")
    for other in ("Which language is official in Tavessia?",  # another place
                  "Which language is official in the Republic?",  # the rare word left out
                  "Which language is official in North Tavessa?"):  # a name the lesson lacks
        assert not terms_match(terms, lesson, other)
    hotel = "What is the check-in time at the Velloway Hotel?"
    assert terms_match(key_terms(hotel), hotel, "When can guests arrive at Velloway?")
    assert not terms_match(key_terms(hotel), hotel, "When can guests arrive at the Velloway Inn?")
    # a name of ordinary words only is said in full, and numbers always count
    band = "Who is the lead singer of the band Copper Wolves?"
    assert not terms_match(key_terms(band), band, "Who sings for Copper?")
    route = "When does bus 5521 leave Marnevaux?"
    assert not terms_match(key_terms(route), route, "When does the bus leave Marnevaux?")


def test_the_gate_judges_answers_by_their_names_and_numbers() -> None:
    assert answer_holds("Mirela Quonst", "The CEO is Mirela Quonst, since 2020.")
    assert not answer_holds("Mirela Quonst", "The CEO is Elian Kass.")
    assert answer_holds("It was founded in 1911.", "Founded in 1911 by a baker.")
    assert same_answer("Paris is the capital of France.", "Paris is the capital of France")
    assert not same_answer("Paris is the capital of France.", "Mirela Quonst is the CEO.")
    assert near_variants("Who is the CEO of Acme Biotech?") == ["Who is the CEO of Acme Northwind?"]
