"""Make the store_support SFT data set: template dialogues plus hand-written ones.

    python examples/store_support/sft/generate.py        # rewrites train/validation/test.jsonl

Pebble & Pine is a fictional online home-goods store, so the bundled model cannot
know its opening hours, prices or policies: whatever it answers right after
fine-tuning, it learned here. Dialogues are multi-turn customer-service exchanges
(order status with the order record given in the system message, as dialoop's
evidence seam does; returns; shipping costs; product questions; opening hours;
hand-off to a person; greetings and thanks; out-of-scope requests). Each
assistant message lists its ``keys``: the facts a correct answer must contain.

The output is deterministic (seeded): the same files on every run. The split is
fixed: 240 training, 30 validation and 30 test dialogues, hand-written ones spread
over all three.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
SEED = 7
N_GENERATED = 270
SPLIT = {"train": 240, "validation": 30, "test": 30}
SYSTEM = "You are the customer service assistant of Pebble & Pine, an online home goods store."
PHONE = "1-800-555-0199"
EMAIL = "help@pebbleandpine.example"
RETURNS_URL = "pebbleandpine.example/returns"
HOURS = ("Monday to Friday from 9 am to 6 pm and on Saturday from 10 am to 2 pm, "
         "Eastern Time")

# name: (price, facts the templates can ask about: (question forms, answer, key))
PRODUCTS: dict[str, dict[str, str]] = {
    "linen duvet cover": {"price": "$129", "size": "230 by 220 cm (queen)",
                          "material": "100% European linen", "colors": "sage, grey and white"},
    "Pine & Cedar soy candle": {"price": "$24", "size": "a 300 g jar that burns about 45 hours",
                                "material": "soy wax with essential oils",
                                "colors": "amber glass only"},
    "stoneware mug set": {"price": "$38", "size": "four 350 ml mugs",
                          "material": "glazed stoneware, dishwasher and microwave safe",
                          "colors": "sand, blue, moss and charcoal"},
    "walnut bookshelf": {"price": "$289", "size": "180 cm tall with five shelves",
                         "material": "solid walnut", "colors": "natural walnut only"},
    "jute rug": {"price": "$149", "size": "160 by 230 cm", "material": "hand-woven jute",
                 "colors": "natural only"},
    "oak serving board": {"price": "$45", "size": "50 by 25 cm", "material": "solid oak",
                          "colors": "natural oak only"},
    "Harbor table lamp": {"price": "$79", "size": "45 cm tall, for an E26 bulb (not included)",
                          "material": "brass and frosted glass",
                          "colors": "brass only"},
    "waffle towel set": {"price": "$56", "size": "2 bath towels and 2 hand towels",
                         "material": "100% cotton waffle weave", "colors": "white, clay and sage"},
    "merino throw blanket": {"price": "$98", "size": "130 by 170 cm",
                             "material": "100% merino wool", "colors": "oat and charcoal"},
    "handmade ceramic vase": {"price": "$34", "size": "25 cm tall",
                              "material": "hand-thrown ceramic", "colors": "white and speckled"},
    "cast iron skillet": {"price": "$62", "size": "26 cm across",
                          "material": "pre-seasoned cast iron", "colors": "black only"},
    "rattan laundry basket": {"price": "$49", "size": "60 liters, with a lid",
                              "material": "hand-woven rattan", "colors": "natural only"},
}
ASK_PRODUCT = {
    "price": ["How much is the {p}?", "what does the {p} cost", "What's the price of the {p}?",
              "how much do you charge for the {p}?"],
    "size": ["How big is the {p}?", "what are the dimensions of the {p}", "What size is the {p}?"],
    "material": ["What is the {p} made of?", "what material is the {p}",
                 "Is the {p} made of natural materials?"],
    "colors": ["What colors does the {p} come in?", "is the {p} available in other colors?",
               "Which colors can I get the {p} in?"],
}
SAY_PRODUCT = {
    "price": "The {p} costs {v}.",
    "size": "The {p} is {v}.",
    "material": "The {p} is made of {v}.",
    "colors": "The {p} comes in {v}.",
}

GREETINGS = ["Hi", "Hello", "hey there", "Good morning", "hi!", "Hello, I have a question"]
GREETING_REPLY = "Hello! Welcome to Pebble & Pine customer service. How can I help you today?"
THANKS = ["thanks!", "Thank you", "great, thanks", "ok thank you", "perfect, thanks a lot",
          "That helps, thanks"]
THANKS_REPLY = "You're welcome! Is there anything else I can help you with?"
BYES = ["no, that's all", "No thanks, bye", "nope, that's it", "that's everything"]
BYE_REPLY = "Thank you for contacting Pebble & Pine. Have a great day!"

ASK_ORDER = ["Where is my order?", "where's my package", "Can you check my order status?",
             "My order hasn't arrived yet", "I'd like to know when my order will arrive",
             "has my order shipped?"]
ASK_ORDER_WITH_NUMBER = ["Where is my order {o}?", "can you check order {o}",
                         "What's the status of {o}?", "my order {o} hasn't arrived"]
GIVE_NUMBER = ["It's {o}", "{o}", "order number {o}", "Sure, {o}", "the number is {o}"]
ASK_NUMBER = ("I can check that for you. What is your order number? It starts with PP- "
              "and is in your confirmation email.")
CARRIERS = ["UPS", "FedEx", "USPS"]
MONTHS = ["March", "April", "May", "June"]

ASK_RETURN = ["I want to return the {p}", "How do I return the {p}?",
              "can I send back the {p}?", "I'd like a refund for the {p}",
              "the {p} isn't what I expected, can I return it?"]
RETURN_REPLY = (f"You can return the {{p}} within 30 days of delivery if it is unused and in "
                f"its original packaging. Start the return at {RETURNS_URL} with your order "
                "number; the return label costs $5.95, which we deduct from your refund.")
ASK_REFUND_TIME = ["How long until I get my money back?", "when will I get the refund?",
                   "how long does the refund take"]
REFUND_TIME_REPLY = ("Your refund is issued within 5 business days after the return reaches "
                     "our warehouse.")
ASK_DAMAGED = ["The {p} arrived damaged, what do I do?", "my {p} came broken",
               "The {p} I received is damaged"]
DAMAGED_REPLY = (f"I'm sorry the {{p}} arrived damaged. Please start a return at {RETURNS_URL}: "
                 "returns of damaged items are free, and we will send a replacement or refund "
                 "you in full.")

ASK_SHIPPING = ["How much is shipping?", "what does delivery cost", "Do you charge for shipping?",
                "how much is standard shipping?", "What are your shipping costs?"]
SHIPPING_REPLY = ("Standard shipping costs $4.95 and takes 3 to 5 business days; it is free "
                  "on orders over $50. Express shipping costs $12.95 and takes 1 to 2 business "
                  "days.")
ASK_CANADA = ["Do you ship to Canada?", "can you deliver to Canada",
              "what about shipping to Canada?"]
CANADA_REPLY = "Yes, we ship to Canada for a flat $14.95; delivery takes 5 to 8 business days."
ASK_ABROAD = ["Do you ship to {c}?", "can I get delivery to {c}?", "Is shipping to {c} possible?"]
ABROAD_REPLY = "I'm sorry, we ship only to the United States and Canada at the moment."
COUNTRIES = ["Germany", "the UK", "Australia", "Mexico", "France", "Japan"]
ASK_FREE = ["Is shipping ever free?", "how do I get free shipping?",
            "What's the minimum for free delivery?"]
FREE_REPLY = "Standard shipping is free on orders over $50."

ASK_HOURS = ["What are your opening hours?", "when are you open", "When can I call you?",
             "What hours is customer service available?", "what time do you close today?"]
HOURS_REPLY = f"Our customer service is open {HOURS}."
ASK_SUNDAY = ["Are you open on Sundays?", "can I call on Sunday?", "what about weekends?"]
SUNDAY_REPLY = ("We are closed on Sundays and public holidays; on Saturday we are open from "
                "10 am to 2 pm, Eastern Time.")

ASK_HUMAN = ["I want to talk to a human", "Can I speak to a real person?", "get me an agent please",
             "I'd rather talk to someone on the phone", "connect me with a person"]
HUMAN_REPLY = (f"Of course. You can reach our team at {PHONE} or by email at {EMAIL}, "
               f"{HOURS}.")

OUT_OF_SCOPE = ["Can you help me with my math homework?", "What's the capital of Peru?",
                "Tell me a joke", "who won the game last night?", "Can you book me a flight?"]
OUT_OF_SCOPE_REPLY = ("I'm sorry, I can only help with Pebble & Pine orders, products, shipping "
                      "and returns. Is there anything about those I can help with?")


def main() -> None:
    rng = random.Random(SEED)
    generated = [_dialogue(rng) for _ in range(N_GENERATED)]
    handwritten = _read_handwritten(HERE / "handwritten.txt")
    # Spread the hand-written ones over the splits in proportion, the rest at random.
    rng.shuffle(generated)
    rng.shuffle(handwritten)
    total = len(generated) + len(handwritten)
    assert total == sum(SPLIT.values()), (total, SPLIT)
    start_g = start_h = 0
    for split, n in SPLIT.items():
        n_h = round(len(handwritten) * n / total)
        part = handwritten[start_h:start_h + n_h] + generated[start_g:start_g + n - n_h]
        start_h, start_g = start_h + n_h, start_g + n - n_h
        rng.shuffle(part)
        out = HERE / f"{split}.jsonl"
        out.write_text("".join(json.dumps({"messages": d}, ensure_ascii=False) + "\n"
                               for d in part))
        print(f"{out.name}: {len(part)} dialogues ({n_h} hand-written)")


# -- one dialogue: a greeting, one or two requests, then thanks -------------------------


def _dialogue(rng: random.Random) -> list[dict]:
    system = SYSTEM
    turns: list[dict] = []
    if rng.random() < 0.3:
        turns += _turn(rng.choice(GREETINGS), GREETING_REPLY)
    topics = rng.sample(list(_TOPICS), k=rng.choice([1, 1, 2]))
    for topic in topics:
        extra_system, exchange = _TOPICS[topic](rng)
        if extra_system:
            system = f"{system}\n{extra_system}"
        turns += exchange
    if rng.random() < 0.6:
        turns += _turn(rng.choice(THANKS), THANKS_REPLY)
        if rng.random() < 0.5:
            turns += _turn(rng.choice(BYES), BYE_REPLY)
    return [{"role": "system", "content": system}, *turns]


def _turn(user: str, assistant: str, keys: list[str] | None = None) -> list[dict]:
    answer: dict = {"role": "assistant", "content": assistant}
    if keys:
        answer["keys"] = keys
    return [{"role": "user", "content": user}, answer]


def _order(rng: random.Random) -> tuple[str, list[dict]]:
    number = f"PP-{rng.randint(10000, 49999)}"
    month, day = rng.choice(MONTHS), rng.randint(1, 24)
    carrier = rng.choice(CARRIERS)
    tracking = f"{carrier[:2].upper()}{rng.randint(10**9, 10**10 - 1)}"
    status = rng.choice(["shipped", "shipped", "processing", "delivered", "delayed"])
    if status == "shipped":
        record = (f"shipped on {month} {day} with {carrier}, tracking number {tracking}, "
                  f"expected delivery {month} {day + 3}")
        reply = (f"Your order {number} shipped on {month} {day} with {carrier}. The tracking "
                 f"number is {tracking}, and it should arrive by {month} {day + 3}.")
        keys = [tracking, f"{month} {day + 3}"]
    elif status == "processing":
        record = "being packed at the warehouse, ships within 1 business day"
        reply = (f"Your order {number} is being packed at our warehouse and will ship within "
                 "1 business day. You will get an email with the tracking number then.")
        keys = ["1 business day"]
    elif status == "delivered":
        record = f"delivered on {month} {day} by {carrier}"
        reply = (f"Your order {number} was delivered on {month} {day} by {carrier}. If you "
                 f"cannot find it, please call us at {PHONE}.")
        keys = [f"{month} {day}"]
    else:
        record = (f"delayed at the {carrier} depot, new expected delivery {month} {day + 5}, "
                  f"tracking number {tracking}")
        reply = (f"I'm sorry, your order {number} is delayed at the {carrier} depot. The new "
                 f"expected delivery date is {month} {day + 5}; the tracking number is "
                 f"{tracking}.")
        keys = [f"{month} {day + 5}"]
    evidence = f"Order record {number}: {record}."
    if rng.random() < 0.5:
        exchange = (_turn(rng.choice(ASK_ORDER), ASK_NUMBER)
                    + _turn(rng.choice(GIVE_NUMBER).format(o=number), reply, keys))
    else:
        exchange = _turn(rng.choice(ASK_ORDER_WITH_NUMBER).format(o=number), reply, keys)
    return evidence, exchange


def _returns(rng: random.Random) -> tuple[str, list[dict]]:
    product = rng.choice(list(PRODUCTS))
    if rng.random() < 0.3:
        return "", _turn(rng.choice(ASK_DAMAGED).format(p=product),
                         DAMAGED_REPLY.format(p=product), ["free", RETURNS_URL])
    exchange = _turn(rng.choice(ASK_RETURN).format(p=product), RETURN_REPLY.format(p=product),
                     ["30 days", RETURNS_URL])
    if rng.random() < 0.5:
        exchange += _turn(rng.choice(ASK_REFUND_TIME), REFUND_TIME_REPLY, ["5 business days"])
    return "", exchange


def _shipping(rng: random.Random) -> tuple[str, list[dict]]:
    exchange = _turn(rng.choice(ASK_SHIPPING), SHIPPING_REPLY, ["$4.95", "$50"])
    follow = rng.random()
    if follow < 0.3:
        exchange += _turn(rng.choice(ASK_CANADA), CANADA_REPLY, ["$14.95"])
    elif follow < 0.55:
        exchange += _turn(rng.choice(ASK_ABROAD).format(c=rng.choice(COUNTRIES)), ABROAD_REPLY,
                          ["United States and Canada"])
    elif follow < 0.7:
        exchange += _turn(rng.choice(ASK_FREE), FREE_REPLY, ["$50"])
    return "", exchange


def _product(rng: random.Random) -> tuple[str, list[dict]]:
    product = rng.choice(list(PRODUCTS))
    aspects = rng.sample(list(ASK_PRODUCT), k=rng.choice([1, 2]))
    exchange: list[dict] = []
    for aspect in aspects:
        value = PRODUCTS[product][aspect]
        question = rng.choice(ASK_PRODUCT[aspect]).format(p=product)
        if exchange:  # a follow-up names the product less often
            question = question.replace(f"the {product}", "it")
        key = _key(aspect, value)
        exchange += _turn(question, SAY_PRODUCT[aspect].format(p=product, v=value), [key])
    return "", exchange


def _key(aspect: str, value: str) -> str:
    """The part of a product fact a right answer cannot do without."""
    if aspect == "size":
        match = re.search(r"\d+( by \d+)?", value)
        assert match is not None, value
        return match.group(0)
    if aspect == "colors":
        return value.split(",")[0].split(" and ")[0].removesuffix(" only")
    return value.split(",")[0].split(" with ")[0]


def _hours(rng: random.Random) -> tuple[str, list[dict]]:
    exchange = _turn(rng.choice(ASK_HOURS), HOURS_REPLY, ["9 am", "6 pm"])
    if rng.random() < 0.4:
        exchange += _turn(rng.choice(ASK_SUNDAY), SUNDAY_REPLY, ["closed"])
    return "", exchange


def _hand_off(rng: random.Random) -> tuple[str, list[dict]]:
    return "", _turn(rng.choice(ASK_HUMAN), HUMAN_REPLY, [PHONE])


def _out_of_scope(rng: random.Random) -> tuple[str, list[dict]]:
    return "", _turn(rng.choice(OUT_OF_SCOPE), OUT_OF_SCOPE_REPLY)


_TOPICS = {
    "order": _order, "order2": _order, "returns": _returns, "shipping": _shipping,
    "product": _product, "product2": _product, "hours": _hours, "hand_off": _hand_off,
    "out_of_scope": _out_of_scope,
}


# -- hand-written dialogues ------------------------------------------------------------------


def _read_handwritten(path: Path) -> list[list[dict]]:
    """Blocks of ``S:``/``U:``/``A:``/``K:`` lines (see the file's header)."""
    roles = {"S": "system", "U": "user", "A": "assistant"}
    dialogues: list[list[dict]] = []
    current: list[dict] = []
    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if current:
                dialogues.append(current)
                current = []
            continue
        tag, _, text = line.partition(": ")
        if tag == "K":
            current[-1]["keys"] = [k.strip() for k in text.split(" | ")]
        else:
            current.append({"role": roles[tag], "content": text})
    return dialogues


if __name__ == "__main__":
    main()
