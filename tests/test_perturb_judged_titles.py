"""Stage 05's synonym variants judged on famous titles (issue 17).

The expectations below were written by hand, from English usage, before the code's outputs were
looked at: for each title, the replacements a reader accepts for each word (a variant must be
made of the title's words and these, with at least one changed), the outputs that must *not*
appear (a wrong part of speech, a wrong sense, a rare word, a spelling variant of the original),
and whether no variant at all is an acceptable outcome (a title whose words have no synonym that
keeps its meaning: "no variant" is then better than a bad one).
"""

from __future__ import annotations

import itertools
import re

import perturbation_fixtures as pf
import pytest

from iconicity_utils.perturb import synonyms

#: title, creator, {title word: accepted replacements}, must-not-appear, no variant is acceptable
JUDGED = [
    ("Liberty Leading the People", "Eugène Delacroix",
     {"Liberty": ["Freedom"], "Leading": ["Guiding", "Directing", "Heading", "Conducting"],
      "People": ["Populace", "Public", "Folk", "Citizenry", "Multitude"]},
     ["Star", "Prima", "Top"], False),
    ("The Scream", "Edvard Munch",
     {"Scream": ["Shriek", "Screech", "Cry", "Shout", "Yell", "Howl", "Wail", "Screaming", "Outcry"]},
     ["Call", "Holler"], True),
    ("The Kiss", "Gustav Klimt", {"Kiss": ["Smooch", "Peck"]}, ["Buss", "Osculation"], True),
    ("Saturn Devouring His Son", "Francisco Goya",
     {"Devouring": ["Eating", "Consuming", "Swallowing", "Gobbling", "Wolfing", "Guzzling"], "Son": ["Boy"]},
     ["Greedy", "Voracious", "Ravenous", "Avid"], True),
    ("The Wizard of Oz", "Victor Fleming",
     {"Wizard": ["Magician", "Sorcerer", "Enchanter", "Conjurer", "Warlock", "Magus"]},
     ["Star", "Ace", "Expert", "Whiz", "Champion", "Adept", "Genius", "Hotshot"], True),
    ("The Son of Man", "René Magritte",
     {"Son": ["Boy"], "Man": ["Mankind", "Humanity", "Humankind", "Human"]},
     ["Adult Male", "Adult"], True),
    ("Star Wars", "George Lucas", {"Wars": ["Conflicts", "Battles", "Fights"]},
     ["Warfares", "Warfare", "Prima", "Leading"], True),
    ("Sunflowers", "Vincent van Gogh", {}, ["Helianthus", "Helianthuses"], True),
    ("The Hunters in the Snow", "Pieter Bruegel the Elder",
     {"Hunters": ["Huntsmen"], "Snow": ["Snowfall"]}, ["Huntsmans", "Hunter"], True),
    ("The Ambassadors", "Hans Holbein the Younger",
     {"Ambassadors": ["Envoys", "Emissaries", "Diplomats"]}, ["Embassadors", "Embassador"], True),
    ("2001: A Space Odyssey", "Stanley Kubrick",
     {"Space": ["Outer Space", "Cosmic"], "Odyssey": ["Journey", "Voyage", "Trek"]},
     ["Infinite", "A Infinite", "Quad", "Blank"], True),
    ("Seven Samurai", "Akira Kurosawa", {}, ["Vii", "7", "Septet", "Heptad", "Sevener"], True),
    ("The Starry Night", "Vincent van Gogh",
     {"Starry": ["Starlit", "Star-studded"], "Night": ["Nighttime", "Evening"]}, ["Stellar", "Starred"], True),
    ("The Persistence of Memory", "Salvador Dalí",
     {"Persistence": ["Perseverance", "Endurance", "Tenacity", "Permanence", "Continuance", "Persistency",
                      "Pertinacity", "Doggedness", "Continuity"],
      "Memory": ["Remembrance", "Recollection", "Retention"]},
     ["Storage", "Computer Memory", "Memory Board"], True),
    ("The Birth of Venus", "Sandro Botticelli",
     {"Birth": ["Nativity", "Origin", "Beginning"]}, ["Nascency", "Nascence", "Parturition", "Giving Birth"], True),
    ("The Last Supper", "Leonardo da Vinci",
     {"Last": ["Final"], "Supper": ["Dinner", "Evening Meal"]}, ["Concluding", "Close", "Stopping Point"], True),
    ("Girl with a Pearl Earring", "Johannes Vermeer",
     {"Girl": ["Young Woman", "Young Lady", "Miss", "Maiden", "Lass"]}, ["Fille", "Female Child", "Missy"], True),
    ("The Night Watch", "Rembrandt",
     {"Night": ["Nighttime"], "Watch": ["Guard", "Vigil", "Patrol", "Lookout", "Watchman", "Sentry"]},
     ["Timepiece", "Ticker", "Wristwatch", "Timekeeper"], True),
    ("The Great Wave off Kanagawa", "Hokusai",
     {"Great": ["Big", "Large", "Huge", "Enormous", "Massive", "Mighty", "Giant"],
      "Wave": ["Breaker", "Billow", "Swell", "Surge", "Roller"]},
     ["Bang-up", "Outstanding", "Gravid", "Expectant", "Undulation", "Heavy"], True),
    ("The Raft of the Medusa", "Théodore Géricault", {}, ["Lot", "Batch", "Mass", "Heap", "Pile"], True),
    ("The Garden of Earthly Delights", "Hieronymus Bosch",
     {"Earthly": ["Worldly", "Terrestrial", "Mundane", "Temporal"], "Delights": ["Pleasures", "Joys"]},
     ["Delectations", "Delight"], True),
    ("The Great Dictator", "Charlie Chaplin",
     {"Great": ["Grand"], "Dictator": ["Tyrant", "Autocrat", "Despot"]}, ["Large", "Big", "Expectant", "Heavy"], True),
    ("Jaws", "Steven Spielberg", {"Jaws": ["Mandibles", "Maws"]}, ["Jawbones", "Jaw", "Chops"], True),
    ("The Godfather", "Francis Ford Coppola", {}, ["Godparent", "Sponsor", "Patron", "God"], True),
    ("Apocalypse Now", "Francis Ford Coppola",
     {"Apocalypse": ["Armageddon", "Doomsday", "Cataclysm", "Catastrophe"]},
     ["Nowadays", "Forthwith", "Straightaway", "Directly", "Immediately", "Right Away", "At Present"], True),
    ("The Silence of the Lambs", "Jonathan Demme",
     {"Silence": ["Quiet", "Stillness", "Hush", "Quietness"]}, ["Lambkins", "Innocents", "Secrecy", "Muteness"], True),
    ("Vertigo", "Alfred Hitchcock", {"Vertigo": ["Dizziness", "Giddiness"]}, ["Vertiginousness", "Vertigos"], True),
    ("Whistler's Mother", "James McNeill Whistler",
     {"Mother": ["Mom", "Mum", "Ma", "Mama", "Mamma", "Mommy", "Mummy", "Momma"]},
     ["Female Parent", "Fuss", "Beget"], True),
    ("The Sleeping Gypsy", "Henri Rousseau",
     {"Sleeping": ["Slumbering", "Dozing", "Napping", "Resting"], "Gypsy": ["Romany", "Roma", "Wanderer"]},
     ["Gipsy", "Dormant", "Inactive", "Quiescent"], True),
    ("Wanderer above the Sea of Fog", "Caspar David Friedrich",
     {"Wanderer": ["Rover", "Roamer", "Drifter", "Vagabond", "Traveller", "Traveler", "Nomad"],
      "Sea": ["Ocean"], "Fog": ["Mist", "Haze", "Murk"]},
     ["Fogginess", "Wanderers"], True),
    ("Impression, Sunrise", "Claude Monet",
     {"Sunrise": ["Dawn", "Daybreak", "Sunup", "Dayspring", "Morning"]}, ["Belief", "Opinion", "Notion", "Dawning"], True),
    ("The Lord of the Rings", "Peter Jackson",
     {"Lord": ["Master", "Ruler", "Overlord"], "Rings": ["Bands", "Circles", "Hoops"]},
     ["Pack", "Mob", "Gang", "Annulus", "Peer", "Noble", "Godhead"], True),
    ("Taxi Driver", "Martin Scorsese",
     {"Taxi": ["Cab"], "Driver": ["Chauffeur"]}, ["Taxicab", "Device Driver", "Number One Wood", "Hack"], True),
    ("Dogs Playing Poker", "Cassius Marcellus Coolidge",
     {"Dogs": ["Canines", "Hounds"], "Playing": ["Gambling"]},
     ["Domestic Dogs", "Frump", "Cad", "Hotdog", "Frankfurter", "Act", "Toy"], True),
    ("Gone with the Wind", "Victor Fleming",
     {"Wind": ["Breeze", "Gale", "Gust"], "Gone": ["Departed", "Vanished"]},
     ["Air Current", "Current of Air", "Fart", "Flatus", "Deceased", "Exhausted", "Travelled", "Went"], True),
    ("The Card Players", "Paul Cézanne",
     {"Players": ["Gamblers", "Gamers", "Participants"]},
     ["Musicians", "Instrumentalists", "Actors", "Thespians", "Histrions", "Role Players"], True),
    ("Lady with an Ermine", "Leonardo da Vinci",
     {"Lady": ["Woman", "Noblewoman", "Gentlewoman", "Dame"]}, ["Madam", "Ma'am", "Peeress"], True),
    ("Water Lilies", "Claude Monet", {}, ["H2O", "Irrigate", "Body of Water", "Lily"], True),
]  # fmt: skip

#: known failures, judged wrong and left visible (strict: the test fails when they are fixed)
KNOWN_WRONG = {
    "The Wizard of Oz": "WordNet's tag counts put 'wizard' in the expert sense (ace.n.03: 'star' 3, "
    "'wizard' 2) and the encoder keeps 'The Star of Oz' at cosine 0.69; the title alone does not pick the sense",
    "Girl with a Pearl Earring": "'pearl' has two senses tied on tag count, the gem and the colour "
    "(bone.n.03: bone, ivory, pearl, off-white); pooled, 'Bone Earring' keeps cosine 0.73",
}

#: a made variant counts as made for coverage: at least this many of the titles get an accepted one
MIN_MADE = 10


def _accepted(title: str, accept: dict[str, list[str]]) -> set[str]:
    """Every prompt made of the title's words and their accepted replacements, one word at least changed."""
    parts = re.split(r"([^\W\d_]+(?:'[^\W\d_]+)?)", title)
    options = [[p] + accept.get(p, []) if i % 2 else [p] for i, p in enumerate(parts)]
    out = {"".join(combo).lower() for combo in itertools.product(*options)}
    out.discard(title.lower())
    return out


@pytest.fixture(scope="module")
def made(demo_cfg):
    wn = pf.load_wn(demo_cfg)
    ranker = synonyms.meaning_ranker("all-minilm-l6-v2")
    return {
        title: synonyms.synonym_variants(title, wn, creator=creator, ranker=ranker)[0]
        for title, creator, *_ in JUDGED
    }


def test_at_least_thirty_judged_titles():
    assert len(JUDGED) >= 30 and len({t for t, *_ in JUDGED}) == len(JUDGED)


def _cases():
    for case in JUDGED:
        why = KNOWN_WRONG.get(case[0])
        yield pytest.param(
            *case, id=case[0], marks=[pytest.mark.xfail(reason=why, strict=True)] if why else []
        )


@pytest.mark.parametrize(("title", "creator", "accept", "bad", "none_ok"), list(_cases()))
def test_judged_title(made, title, creator, accept, bad, none_ok):
    v = made[title]
    if v.prompt is None:
        assert none_ok, f"{title!r}: no variant ({v.reason}), but a good one exists"
        assert v.reason
        return
    words = {w.lower() for w in re.findall(r"[^\W_]+(?:[-'][^\W_]+)*", v.prompt)}
    for b in bad:
        assert not (b.lower() in words or f" {b.lower()} " in f" {v.prompt.lower()} "), (title, v.prompt, b)
    assert v.prompt.lower() in _accepted(title, accept), f"{title!r} -> {v.prompt!r} ({v.method})"


def test_enough_titles_get_an_accepted_variant(made):
    n = sum(v.prompt is not None for v in made.values())
    assert n >= MIN_MADE, {t: v.prompt for t, v in made.items()}
