"""Small synthetic tasks for offline fine-tuning: NER, extractive QA and sentiment.

No real NER or QA corpus can be had offline, so these are built from templates and gazetteers.
They are easy for a model that works and impossible for one that does not: the entity type
depends on the gazetteer word *and* its context, capitalised non-entities (weekdays, months,
sentence-initial words, nationalities) must be tagged O, and each QA passage holds several facts
of the same kind so that the answer depends on the question.
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shlex
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InputError
from .runfiles import atomic_write_json, atomic_write_text, check_target_dir, replace_dir
from .tasks.qa import SquadExample

# ---------------------------------------------------------------------------------------------
# Gazetteers
# ---------------------------------------------------------------------------------------------

FIRST_NAMES = [
    "Alice", "Bruno", "Chen", "Dana", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemal", "Leila", "Marta", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tessa",
    "Umar", "Vera", "Walter", "Ximena", "Yusuf", "Zoe",
]
LAST_NAMES = [
    "Almeida", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero",
    "Rossi", "Schmidt", "Tanaka", "Urban", "Vargas", "Weber", "Yilmaz", "Zhang",
]
LOCATIONS = [
    "Paris", "Berlin", "Lisbon", "Nairobi", "Osaka", "Toronto", "Lima", "Oslo", "Cairo", "Hanoi",
    "New York", "San Francisco", "Buenos Aires", "Rio de Janeiro", "Hong Kong", "Cape Town",
    "Kuala Lumpur", "New Delhi", "Mexico City", "Salt Lake City", "Tel Aviv", "Abu Dhabi",
]
ORGANIZATIONS = [
    "Acme Corporation", "United Nations", "Red Cross", "Globex", "Initech", "World Bank",
    "Northwind Traders", "Blue Harbor Bank", "Stark Industries", "Umbrella Labs", "Aperture Science",
    "Vandelay Industries", "Oceanic Airlines", "Cyberdyne Systems", "Wayne Enterprises",
    "Pied Piper", "Hooli", "Soylent Foods", "Tyrell Corporation", "Massive Dynamic",
]
# Capitalised words that are not entities (tagged O).
DAYS = ["Monday", "Tuesday", "Friday", "Sunday", "January", "March", "July", "October", "Easter"]
NATIONALITIES = ["English", "French", "Japanese", "Swahili", "Portuguese", "Korean"]
OBJECTS = [
    "bicycle", "violin", "telescope", "camera", "laptop", "piano", "kayak", "painting",
    "typewriter", "guitar", "microscope", "sailboat", "lantern", "compass", "globe", "clock",
]

# NER templates: {PER} {LOC} {ORG} are entities, {DAY} {NAT} capitalised distractors (tagged O).
NER_TEMPLATES = [
    "{PER} flew to {LOC} on {DAY} .",
    "{ORG} hired {PER} last year .",
    "Yesterday {PER} visited the {ORG} office in {LOC} .",
    "The {ORG} report was published in {LOC} on {DAY} .",
    "{PER} and {PER} met in {LOC} .",
    "According to {PER} , {ORG} will open a branch in {LOC} .",
    "On {DAY} , {ORG} announced a partnership with {ORG} .",
    "{LOC} welcomed {PER} , who spoke {NAT} with {ORG} staff .",
    "Shares of {ORG} rose after {PER} left for {LOC} .",
    "Every {DAY} {PER} teaches {NAT} lessons in {LOC} .",
    "{PER} said that {LOC} is colder than {LOC} .",
    "Investors in {LOC} doubt that {ORG} can beat {ORG} .",
    "Later , {PER} joined {ORG} as chief engineer .",
    "Tickets from {LOC} to {LOC} are cheaper in {DAY} .",
]


def _person(rng: random.Random) -> list[str]:
    """One, two or three-word person names (so I-PER tags appear)."""
    shape = rng.random()
    if shape < 0.2:
        return [rng.choice(LAST_NAMES)]
    if shape < 0.85:
        return [rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)]
    return [rng.choice(FIRST_NAMES), rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)]


def _entity(kind: str, rng: random.Random) -> list[str]:
    if kind == "PER":
        return _person(rng)
    if kind == "LOC":
        return rng.choice(LOCATIONS).split()
    if kind == "ORG":
        return rng.choice(ORGANIZATIONS).split()
    if kind == "DAY":
        return [rng.choice(DAYS)]
    if kind == "NAT":
        return [rng.choice(NATIONALITIES)]
    raise InputError(f"unknown template slot {{{kind}}}")


def make_ner(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``n`` tagged sentences (BIO tags over PER, LOC, ORG) from varied templates."""
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        tokens: list[str] = []
        tags: list[str] = []
        for word in rng.choice(NER_TEMPLATES).split():
            kind = word[1:-1] if word.startswith("{") else None
            if kind is None:
                tokens.append(word)
                tags.append("O")
                continue
            words = _entity(kind, rng)
            tokens.extend(words)
            if kind in ("DAY", "NAT"):
                tags.extend("O" for _ in words)
            else:
                tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
        sentences.append((tokens, tags))
    return sentences


def write_conll(examples: Sequence[tuple[Sequence[str], Sequence[str]]], path: str | Path) -> Path:
    """Write ``token tag`` lines with a blank line after each sentence (read back by read_conll), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for n, (tokens, tags) in enumerate(examples):
        if len(tokens) != len(tags):
            raise InputError(f"sentence {n}: {len(tokens)} tokens but {len(tags)} tags")
        for token, tag in zip(tokens, tags):
            if not token or any(ch.isspace() for ch in token):
                raise InputError(f"sentence {n}: token {token!r} is empty or contains whitespace")
            lines.append(f"{token} {tag}")
        lines.append("")
    return atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Extractive QA
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fact:
    """A sentence template and the questions it answers: (question template, answer slot)."""

    sentence: str
    questions: tuple[tuple[str, str], ...]


QA_FACTS = [
    _Fact(
        "{person} was born in {city} in {year}.",
        (("Where was {person} born?", "city"), ("In what year was {person} born?", "year"),
         ("Who was born in {city}?", "person")),
    ),
    _Fact(
        "{person} bought a {object} in {city}.",
        (("What did {person} buy?", "object"), ("Who bought a {object}?", "person"),
         ("Where did {person} buy a {object}?", "city")),
    ),
    _Fact(
        "In {year}, {person} moved to {city}.",
        (("Where did {person} move in {year}?", "city"), ("When did {person} move to {city}?", "year")),
    ),
    _Fact(
        "{person} gave an old {object} to {person2}.",
        (("Who received the {object} from {person}?", "person2"),
         ("What did {person} give to {person2}?", "object")),
    ),
    _Fact(
        "The museum of {city} opened in {year}.",
        (("When did the museum of {city} open?", "year"),),
    ),
]


def _full_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if name not in used:
            used.add(name)
            return name


def _passage(rng: random.Random) -> tuple[str, list[tuple[str, str, int]]]:
    """A passage of 3-5 facts and its (question, answer, answer_start) triples."""
    used_people: set[str] = set()
    cities = rng.sample(LOCATIONS, 5)
    years = [str(y) for y in rng.sample(range(1850, 2021), 5)]
    objects = rng.sample(OBJECTS, 5)
    facts = rng.sample(QA_FACTS, rng.randint(3, 5))
    context = ""
    qas: list[tuple[str, str, int]] = []
    for i, fact in enumerate(facts):
        slots = {
            "person": _full_name(rng, used_people),
            "person2": _full_name(rng, used_people),
            "city": cities[i],
            "year": years[i],
            "object": objects[i],
        }
        if context:
            context += " "
        slot_starts: dict[str, int] = {}
        for literal, slot, _, _ in string.Formatter().parse(fact.sentence):
            context += literal
            if slot is not None:
                slot_starts[slot] = len(context)
                context += slots[slot]
        for question, slot in fact.questions:
            qas.append((question.format(**slots), slots[slot], slot_starts[slot]))
    return context, qas


def make_qa(n: int, seed: int = 0) -> list[SquadExample]:
    """``n`` questions over templated passages; every answer is a span of its context."""
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    examples: list[SquadExample] = []
    passage = 0
    while len(examples) < n:
        context, qas = _passage(rng)
        rng.shuffle(qas)
        for q, (question, answer, start) in enumerate(qas[: n - len(examples)]):
            examples.append(
                SquadExample(f"synth-{seed}-{passage}-{q}", question, context, [(answer, start)],
                             title=f"passage {passage}")
            )
        passage += 1
    return examples


def write_squad(examples: Sequence[SquadExample], path: str | Path) -> Path:
    """Write SQuAD v1.1 JSON, one paragraph per distinct (title, context), in first-seen order, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    articles: dict[str, dict[str, dict]] = {}
    for example in examples:
        paragraphs = articles.setdefault(example.title, {})
        paragraph = paragraphs.setdefault(example.context, {"context": example.context, "qas": []})
        paragraph["qas"].append(
            {
                "id": example.id,
                "question": example.question,
                "answers": [{"text": text, "answer_start": start} for text, start in example.answers],
            }
        )
    data = {
        "version": "1.1",
        "data": [
            {"title": title, "paragraphs": list(paragraphs.values())}
            for title, paragraphs in articles.items()
        ],
    }
    return atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# Sentiment (a fast sentence-classification check)
# ---------------------------------------------------------------------------------------------

POSITIVE = ["great", "wonderful", "delicious", "excellent", "lovely", "fantastic", "superb", "pleasant"]
NEGATIVE = ["terrible", "awful", "bland", "disappointing", "horrible", "stale", "dreadful", "poor"]
SUBJECTS = ["the soup", "this coffee", "the service", "our dinner", "the bread", "my order",
            "the dessert", "the tea", "this cheese", "the pasta"]
SENTIMENT_TEMPLATES = [
    "{subject} was {word} .",
    "honestly , {subject} tasted {word} .",
    "i thought {subject} was {word} and i would say so again .",
    "{subject} arrived quickly and was {word} .",
    "everyone agreed that {subject} was {word} .",
    "{subject} was not {neg_word} at all , it was {word} .",
]


def make_sentiment(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (text, label) pairs, label 'positive' or 'negative', balanced at random.

    Some templates mention an opposite-polarity word under a negation, so counting words is not
    enough: the label follows the final, un-negated adjective.
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        words, opposite = (POSITIVE, NEGATIVE) if label == "positive" else (NEGATIVE, POSITIVE)
        text = rng.choice(SENTIMENT_TEMPLATES).format(
            subject=rng.choice(SUBJECTS), word=rng.choice(words), neg_word=rng.choice(opposite)
        )
        rows.append((text, label))
    return rows


def write_sentiment(rows: Sequence[tuple[str, str]], path: str | Path) -> Path:
    """Write ``text,label`` CSV rows under a header (read back by tasks.classification.read_classification), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# `glassbert data make`: a set as the files a user fine-tunes on
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Set:
    """How one synthetic set is written: its builder and writer, its files, and the command that learns it."""

    build: Callable[[int, int], list[Any]]        # (n, seed) -> examples
    write: Callable[[Sequence[Any], Path], Path]  # (examples, path) -> path
    files: tuple[str, str]  # (training file, evaluation file)
    unit: str
    task: str       # finetune --task
    settings: str   # the finetune options that learn it (as in README "## Fine-tuning")
    default_n: int


SYNTHETIC_SETS: dict[str, _Set] = {
    "ner": _Set(make_ner, write_conll, ("train.conll", "test.conll"), "sentences", "token",
                "--out runs/ner --epochs 3 --lr 1e-4", 1000),
    "qa": _Set(make_qa, write_squad, ("train.json", "dev.json"), "questions", "qa",
               "--out runs/qa --epochs 3 --lr 3e-4", 1000),
    "sentiment": _Set(make_sentiment, write_sentiment, ("train.csv", "test.csv"), "rows", "classify",
                      "--out runs/sentiment --epochs 1", 1000),
}
MADE_FILE = "glassbert_data.json"  # what `data make` wrote: the set, its sizes and seed (and that the folder is its)
EVAL_FRACTION = 4                  # the evaluation file holds a quarter as many examples as the training file


@dataclass(frozen=True)
class MadeSet:
    """What :func:`make_dataset` wrote: ``files`` maps each file to its number of examples."""

    name: str
    out: Path
    files: dict[Path, int]
    unit: str
    seed: int
    next_command: str


def split_seeds(seed: int) -> tuple[int, int]:
    """The seeds of the training and the evaluation file: distinct, and never those of another ``seed``."""
    return 2 * seed, 2 * seed + 1


def make_dataset(name: str, out: str | Path | None = None, n: int | None = None, seed: int = 0,
                 overwrite: bool = False) -> MadeSet:
    """Write synthetic set ``name`` (ner | qa | sentiment) into ``out`` (default ``data/<name>``).

    ``n`` training examples (default: the set's) and ``n // 4`` (at least 1) evaluation examples:
    NER as CoNLL (train.conll, test.conll), QA as SQuAD v1.1 JSON (train.json, dev.json), sentiment as
    CSV text,label (train.csv, test.csv), plus glassbert_data.json recording what was made. The same
    ``name``, ``n`` and ``seed`` give the same bytes. A non-empty ``out`` is refused unless ``overwrite``:
    a folder `data make` wrote then has its set's files replaced (nothing else in it is touched); any
    other folder follows :func:`glassbert.runfiles.check_target_dir` (replaced whole, and only one
    glassbert wrote).
    """
    if name not in SYNTHETIC_SETS:
        raise InputError(f"unknown synthetic set {name!r}; choose one of {', '.join(SYNTHETIC_SETS)}")
    spec = SYNTHETIC_SETS[name]
    n = spec.default_n if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"--n must be a whole number >= 1 (training examples), got {n!r}")
    out = Path(f"data/{name}" if out is None else out)
    if overwrite and (out / MADE_FILE).is_file():
        for old in {MADE_FILE, *(f for s in SYNTHETIC_SETS.values() for f in s.files)}:
            (out / old).unlink(missing_ok=True)
    else:
        check_target_dir(out, overwrite=overwrite, option="--out")
        if overwrite:
            replace_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = (n, max(1, n // EVAL_FRACTION))
    files: dict[Path, int] = {}
    for file, size, split_seed in zip(spec.files, sizes, split_seeds(seed)):
        files[spec.write(spec.build(size, split_seed), out / file)] = size
    atomic_write_json(out / MADE_FILE, {"set": name, "seed": seed, "files": {p.name: k for p, k in files.items()}},
                      indent=2)
    train, test = (shlex.quote(str(p)) for p in files)
    task = "" if spec.task == "classify" else f" --task {spec.task}"
    command = f"glassbert finetune minilm{task} --train {train} --eval {test} {spec.settings}"
    return MadeSet(name, out, files, spec.unit, seed, command)
