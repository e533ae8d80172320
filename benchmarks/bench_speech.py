"""Speech recognition on synthetic speech: word error rate, real-time factor, round trip.

The benchmark makes its own test set: 110 short sentences written for it (everyday
requests and plain statements, public domain by their author), each spoken by two
different synthesizers, espeak-ng (``en-us``, a male US voice: formant synthesis) and CMU
flite (``flite:slt``, a female US voice: statistical parametric synthesis from recordings
of a speaker), and transcribed by dialoop.media.transcribe (Whisper tiny.en, int8, CPU).
``--voices`` takes others (``en-gb+f3``, ``flite:kal``, any that dialoop.media.speak
knows).

- **WER**: word error rate over all sentences of a voice (jiwer), after lower-casing,
  dropping punctuation and writing small numbers as digits (Whisper writes "4", the
  sentence says "four": not an error a listener would notice).
- **RTF**: seconds of transcription compute ÷ seconds of audio (model load excluded).
- **Round trip**: the share of sentences whose transcript equals the text word for word
  (after the same normalisation): text → dialoop.media.speak → transcribe.
- **Voice latency**: seconds from a spoken question (its WAV) to the first audio of a
  spoken answer, p50: transcription + synthesis of the answer's first sentence. The
  language model's own time to its first sentence is not in it (see bench_multiturn.py).
- **First audio of a long answer**: seconds until the first audio of a five-sentence
  answer is ready, made whole (dialoop.media.speak) and streamed sentence by sentence
  (dialoop.media.speak_stream, as ``/v1/audio/speech`` with ``stream_format``), p50 of 5.

    python benchmarks/bench_speech.py [--limit 40] [--voices en-us,flite:slt]

Targets (issue 17): WER ≤ 0.15, RTF ≤ 0.5.
"""

from __future__ import annotations

import argparse
import io
import platform
import re
import statistics
import time
import wave

SENTENCES = """\
Please book a table for two people tonight.
I would like to return these shoes because they are too small.
The weather today is sunny with a light breeze from the west.
Can you tell me where the nearest train station is?
The museum opens in the morning and closes in the evening.
My order has not arrived yet and I am getting worried.
Could you send me a copy of my last invoice?
The library is quiet on weekday afternoons.
We need more milk, bread and eggs from the shop.
Turn left at the church and walk past the bakery.
I forgot my password and cannot log in to my account.
How much does a ticket to the city centre cost?
The children played in the park until it got dark.
Please change my delivery address to my office.
Is there a pharmacy open late near here?
The meeting has been moved to Thursday afternoon.
I would like to cancel my subscription at the end of the month.
The river flows slowly through the green valley.
Can I pay with a credit card at the front desk?
Our flight was delayed because of the storm.
She planted roses and tulips along the garden fence.
What time does the last bus leave tonight?
The doctor said I should rest for a few days.
Please remind me to call my mother tomorrow.
The coffee machine on the third floor is broken.
He reads the newspaper every morning with his breakfast.
I need a room with a view of the sea.
The price of the jacket includes a small discount.
Could you speak a little more slowly please?
The train to London leaves from platform two.
My phone battery runs out too quickly.
We are looking for a quiet hotel near the beach.
The package was left outside the front door.
Please add a note that the gift should be wrapped.
The old bridge was closed for repairs last year.
I would like a vegetarian meal on my flight.
The teacher asked the students to open their books.
There is a problem with the heating in my apartment.
Can you recommend a good restaurant nearby?
The store will be closed on the public holiday.
My brother lives in a small town by the mountains.
Please check whether the blue shirt is in stock.
The cat sleeps on the sofa all afternoon.
I want to transfer money to my savings account.
The concert starts at eight and ends around ten.
Do you have this book in a larger print?
The windows should be cleaned before the guests arrive.
I lost my umbrella on the bus this morning.
Could you help me carry these boxes upstairs?
The hospital is at the end of this street.
We watched the sunset from the top of the hill.
My card was charged twice for the same order.
The kitchen smells of fresh bread and cinnamon.
Please let me know when the repair is finished.
The garden needs water after such a dry week.
Is breakfast included in the price of the room?
The bank sent me a letter about my new card.
A strong wind blew the leaves across the road.
I would like to speak to a manager please.
The film was longer than we expected.
Can I bring my dog into the restaurant?
The shop assistant helped me find the right size.
Our neighbours are having a party on Saturday.
Please turn off the lights when you leave.
The parcel should arrive within three working days.
I am allergic to nuts and shellfish.
The road to the village is narrow and winding.
Could you write down the address for me?
The printer in the office has run out of paper.
We had soup and salad for lunch.
My appointment is on Monday at nine in the morning.
The baby finally fell asleep after a long day.
Please do not leave your bags unattended.
The farmer grows potatoes, carrots and onions.
I would like to open a new account for my son.
The lift is out of order so please use the stairs.
Is it possible to change the date of my booking?
The water in the lake was cold but clear.
He fixed the bicycle with a new chain.
Our internet connection keeps dropping in the evening.
The artist painted the harbour at dawn.
Please keep the receipt in case you need a refund.
The school holidays begin next week.
I need directions to the airport.
The soup is too salty for my taste.
She sings in a choir every Sunday.
The car needs new tyres before winter.
Could you please repeat the last question?
The hotel staff were friendly and helpful.
My laptop will not start after the update.
We walked along the beach collecting shells.
Please send the documents by email.
The bakery sells fresh rolls every morning.
I would like to report a lost wallet.
The garden party was cancelled because of the rain.
Can you tell me how to reset the router?
The kitten chased a ball of wool across the floor.
Our team won the match in the final minute.
Please bring a warm coat for the boat trip.
The doctor will see you in a few minutes.
The streets were full of people after the game.
I would like to order a large pizza with mushrooms.
The bookshop on the corner has closed down.
Could you check the tyre pressure for me?
The sun rose slowly over the quiet town.
My flight number is on the confirmation email.
The shop opens again after lunch.
Please put the fragile items on top.
We are planning a trip to the coast next summer.
The museum has a new exhibition about ancient ships.
""".splitlines()

VOICES = ("en-us", "flite:slt")
_NUMBERS = {w: str(i) for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve"))}


def normalise(text: str) -> str:
    words = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()
    return " ".join(_NUMBERS.get(w, w) for w in words)


def _seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as w:
        return w.getnframes() / w.getframerate()


ANSWER = ("Your order 4471 was shipped on Monday. It is travelling with the standard "
          "courier. Delivery usually takes three to five working days. You will get an email "
          "with the tracking link. Let me know if anything else is missing.")


def _first_audio(voice: str, repeats: int = 5) -> tuple[float, float]:
    """p50 seconds to the first audio of :data:`ANSWER`: made whole, and streamed."""
    from dialoop.media import speak, speak_stream

    whole, streamed = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        speak(ANSWER, voice)
        whole.append(time.perf_counter() - start)
        start = time.perf_counter()
        next(iter(speak_stream(ANSWER, voice)))
        streamed.append(time.perf_counter() - start)
    return statistics.median(whole), statistics.median(streamed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=len(SENTENCES),
                        help="Sentences per voice (default: all).")
    parser.add_argument("--voices", default=",".join(VOICES),
                        help=f"Comma-separated voices (default: {','.join(VOICES)}).")
    args = parser.parse_args()
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    import jiwer

    from dialoop.media import speak, transcribe

    sentences = SENTENCES[: args.limit]
    t0 = time.perf_counter()
    transcribe(speak("Warming up.", "en-us"))  # loads the model once
    print(f"model load + first transcription: {time.perf_counter() - t0:.1f} s")
    print(f"{len(sentences)} sentences x {len(voices)} voices on {platform.processor() or 'cpu'}")
    print(f"{'voice':<10} {'WER':>6} {'RTF':>6} {'exact':>6} {'latency p50':>12} "
          f"{'first audio: whole':>19} {'streamed':>9}")
    for voice in voices:
        refs, hyps, compute, audio, latencies = [], [], 0.0, 0.0, []
        for sentence in sentences:
            wav = speak(sentence, voice)
            start = time.perf_counter()
            heard = transcribe(wav).text
            spent = time.perf_counter() - start
            speak("Certainly, here is what I found.", voice)  # the answer's first sentence
            latencies.append(time.perf_counter() - start)
            compute, audio = compute + spent, audio + _seconds(wav)
            refs.append(normalise(sentence))
            hyps.append(normalise(heard) or "<empty>")
        wer = jiwer.wer(refs, hyps)
        exact = sum(r == h for r, h in zip(refs, hyps, strict=True)) / len(refs)
        whole, streamed = _first_audio(voice)
        print(f"{voice:<10} {wer:6.3f} {compute / audio:6.3f} {exact:6.2f} "
              f"{statistics.median(latencies):10.2f} s {whole:17.3f} s {streamed:7.3f} s")
        worst = sorted(zip(refs, hyps, strict=True),
                       key=lambda rh: -jiwer.wer(rh[0], rh[1]))[:3]
        for ref, hyp in worst:
            print(f"    said {ref!r}\n    got  {hyp!r}")


if __name__ == "__main__":
    main()
