"""The built-in head's training sentences and the gate's check sentences, written for dialoop.

Short comments of the kinds a monitor sees (customers, news about companies and markets),
labelled positive, neutral or negative. ``SEED`` trains the head every user starts with;
``CHECK`` is never trained on: a retrained head must do at least as well on it (and on
the held-out corrections) as the head it would replace.
"""

from __future__ import annotations

__all__ = ["CHECK", "SEED"]

_POSITIVE = [
    "I love this, it works perfectly.",
    "Great service, the staff were friendly and quick.",
    "Excellent value for the money.",
    "The new app is fast and easy to use.",
    "Really happy with my purchase.",
    "Best customer support I have ever had.",
    "The bank approved my loan in a day, impressive.",
    "Shares jumped after the company beat earnings expectations.",
    "Profits rose sharply this quarter.",
    "The merger was welcomed by investors.",
    "Strong sales growth pushed the stock to a record high.",
    "They fixed my problem right away, thank you!",
    "Wonderful experience from start to finish.",
    "The update made everything so much smoother.",
    "Highly recommend them to anyone.",
    "Revenue beat forecasts and the outlook was raised.",
    "The fund delivered solid returns this year.",
    "Delivery was early and the packaging was perfect.",
    "Fantastic food and a lovely atmosphere.",
    "The movie was brilliant and moving.",
    "I am impressed by how well this was handled.",
    "Credit rating upgraded on stronger finances.",
    "Good news: fees are going down next month.",
    "The new branch is clean, bright and welcoming.",
    "Their advice saved me a lot of money.",
    "Customers praised the smooth transition to the new system.",
    "A superb product, worth every penny.",
    "The dividend was increased for the tenth year in a row.",
    "Everything arrived on time and works great.",
    "Absolutely delighted with the result.",
]

_NEUTRAL = [
    "The bank will publish its annual report on Thursday.",
    "The meeting is scheduled for 10 am tomorrow.",
    "The company has offices in three countries.",
    "Shares were unchanged in early trading.",
    "The store opens at nine on weekdays.",
    "The central bank kept interest rates unchanged.",
    "I ordered the blue model last week.",
    "The app is available on phones and tablets.",
    "The results will be announced next month.",
    "The firm employs about two thousand people.",
    "Customers can call the helpline or send an email.",
    "The product comes in two sizes.",
    "The board will meet to discuss the proposal.",
    "Trading volume was in line with the monthly average.",
    "The branch moved to a new address in March.",
    "The annual general meeting takes place in May.",
    "The report covers the period from January to June.",
    "I have a question about my statement.",
    "The service is provided by a partner company.",
    "The film is two hours long.",
    "The restaurant is on the corner of the main street.",
    "The contract runs for three years.",
    "The index closed flat on Friday.",
    "The company said it would comment later.",
    "My account was opened in 2019.",
    "The software update is version 4.2.",
    "The chief executive spoke at the conference.",
    "The quarterly figures are due on Wednesday.",
    "The card can be used abroad.",
    "The office is closed on public holidays.",
]

_NEGATIVE = [
    "Terrible service, I waited an hour and nobody helped.",
    "The app keeps crashing, it is useless.",
    "I am very disappointed with this product.",
    "They charged me twice and refuse to refund.",
    "Worst experience ever, never again.",
    "The stock plunged after a profit warning.",
    "The company reported a heavy loss and cut jobs.",
    "Fees went up again, this is outrageous.",
    "My card was blocked for no reason.",
    "Customer support is rude and slow.",
    "Sales collapsed and the outlook is grim.",
    "The bank was fined for misleading customers.",
    "It broke after two days.",
    "The food was cold and tasteless.",
    "A boring, badly acted movie.",
    "Shares fell sharply on fraud allegations.",
    "The outage left thousands of customers without access.",
    "I have been trying to close my account for weeks, awful.",
    "Credit rating cut to junk amid mounting debt.",
    "The delivery was late and the box was damaged.",
    "The new fees are a scam.",
    "Investors fear the firm may go bankrupt.",
    "Nothing works and nobody answers the phone.",
    "The update made everything slower and buggier.",
    "A complete waste of money.",
    "The dividend was suspended after losses.",
    "Angry customers are leaving in droves.",
    "The data breach exposed millions of accounts.",
    "Poor quality, it fell apart immediately.",
    "I regret buying this.",
]

_CHECK_POSITIVE = [
    "Amazing support, my issue was solved in minutes.",
    "Quarterly profit doubled, beating every estimate.",
    "I really enjoy using this card, no complaints.",
    "The staff went out of their way to help me.",
    "Stock soared after the strong results.",
    "Lovely place, great food, we will be back.",
    "The new features are genuinely useful.",
    "Very pleased with the quick refund.",
    "Analysts upgraded the shares after a strong year.",
    "Simple, reliable and cheap, exactly what I wanted.",
    "This phone is a joy to use.",
    "Great film with a clever story.",
]

_CHECK_NEUTRAL = [
    "The bank's headquarters are in the city centre.",
    "The offer is valid until the end of the month.",
    "The company will report earnings on Tuesday.",
    "The product was launched in 2021.",
    "I need to update my home address.",
    "The index opened at the same level as yesterday.",
    "The manual is included in the box.",
    "The new branch opens next week.",
    "Payments are processed within two business days.",
    "The merger talks are expected to continue next week.",
    "The film was released in cinemas last Friday.",
    "Opening hours are listed on the website.",
]

_CHECK_NEGATIVE = [
    "Awful app, it logged me out five times today.",
    "The shares crashed after the accounting scandal.",
    "Still no refund after a month, disgraceful.",
    "The battery died within an hour, rubbish.",
    "Losses widened and the company cut its forecast.",
    "The staff were unhelpful and impolite.",
    "Hidden charges everywhere, I feel cheated.",
    "The service has got worse every year.",
    "Horrible food and a dirty table.",
    "The movie was dull and far too long.",
    "Profit warning sends the stock tumbling.",
    "My transfer failed and the money vanished.",
]

SEED: list[tuple[str, str]] = (
    [(t, "positive") for t in _POSITIVE] + [(t, "neutral") for t in _NEUTRAL]
    + [(t, "negative") for t in _NEGATIVE]
)
CHECK: list[tuple[str, str]] = (
    [(t, "positive") for t in _CHECK_POSITIVE] + [(t, "neutral") for t in _CHECK_NEUTRAL]
    + [(t, "negative") for t in _CHECK_NEGATIVE]
)
