"""Tests of the topic filter: the normalizer, decisions on small batches, explain, evaluate and dev.csv targets."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from digest.evaluate import evaluate
from digest.topics import Decision, Explanation, TopicFilter, classify, explain, normalize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEV_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "topics" / "dev.csv"


@dataclass(frozen=True)
class Topic:
    """A stand-in for the config model: the fields `digest.topics.TopicSpec` reads."""

    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    threshold: float | None = None


HEALTH_IT = Topic(
    name="Health IT",
    description=(
        "Health information technology: electronic health records, interoperability standards such as HL7 and "
        "FHIR, health data exchange, telehealth and digital health tools for hospitals, clinicians and patients."
    ),
    keywords=(
        "EHR", "electronic health record", "FHIR", "HL7", "interoperability", "health information exchange",
        "telehealth", "telemedicine", "digital health", "patient portal", "#HealthIT", "#HITsm",
    ),
)  # fmt: skip
CLIMATE = Topic(
    name="Climate",
    description=(
        "Climate change and the energy transition: greenhouse gas emissions, global warming, extreme weather, "
        "renewable energy and climate policy."
    ),
    keywords=(
        "climate", "climate change", "global warming", "emissions", "carbon", "methane", "sea level",
        "renewable energy", "solar", "wind", "IPCC", "#ClimateChange",
    ),
)  # fmt: skip
LUNCH = "Lunch 🍜 ramen with a soft egg at the corner place, so good! pic.twitter.com/x1y2z3 #foodie"
FHIR_RELEASE = (
    "FHIR R6 ballot is open: HL7 asks implementers for comments on the new release https://hl7.org/fhir #FHIR"
)


def _small_csv() -> tuple[list[str], list[set[str]]]:
    with (FIXTURES / "topics_small.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [set(filter(None, r["labels"].split(";"))) for r in rows]


def _batch() -> list[str]:
    texts, _ = _small_csv()
    return [*texts, LUNCH, FHIR_RELEASE]


# --- normalize --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#HealthIT", "health it"),
        ("#digitalhealth", "digital health"),
        ("#FHIR", "fhir"),
        ("#OpeningDay #nowplaying", "opening day now playing"),
        ("#COVID19 and #covid19", "covid19 and covid19"),
        ("#foodie #mhealth #ehr", "foodie mhealth ehr"),  # no junk splits, acronyms stay whole
    ],
)
def test_normalize_splits_hashtags(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_strips_urls_and_handles() -> None:
    text = (
        "RT @alice: Read this https://example.org/a?b=1 and www.example.com/x via @bob@mastodon.social "
        "(cc @carol.bsky.social) bit.ly/3abc pic.twitter.com/xyz http…"
    )
    assert normalize(text) == "read this and"


def test_normalize_strips_markup_and_entities() -> None:
    assert normalize("Tom &amp; Jerry <b>bold</b> &lt;3 don&#39;t") == "tom jerry bold 3 don t"


def test_normalize_drops_emoji_and_punctuation() -> None:
    assert normalize("Great news!!! 🎉🔥 — really… “quoted”") == "great news really quoted"
    assert normalize("🙂🙂🙂") == ""
    assert normalize("") == ""
    assert normalize("a") == "a"


def test_normalize_keeps_non_english_words() -> None:
    assert normalize("Die Grippewelle erreicht Berlin #Gesundheit") == "die grippewelle erreicht berlin gesundheit"
    assert normalize("Vacunación contra la gripe: ¡ya! #santé") == "vacunación contra la gripe ya santé"
    assert normalize("流感疫苗 😷 #健康") == "流感疫苗 健康"


def test_normalize_is_stable_on_its_own_output() -> None:
    for text in [LUNCH, FHIR_RELEASE, "RT @x: #HealthIT news https://t.co/1"]:
        once = normalize(text)
        assert normalize(once) == once


# --- decisions --------------------------------------------------------------------------------------------


def test_lunch_dropped_and_fhir_release_kept_in_a_small_batch() -> None:
    batch = _batch()
    decisions = TopicFilter([HEALTH_IT, CLIMATE]).fit(batch).decisions()
    assert len(decisions) == len(batch)
    lunch, fhir = decisions[-2], decisions[-1]
    assert lunch.topics == ()
    assert fhir.topics == ("Health IT",)
    assert fhir.scores["Health IT"] >= fhir.thresholds["Health IT"] > fhir.noise_score
    assert set(fhir.scores) == set(fhir.thresholds) == {"Health IT", "Climate"}


def test_posts_without_words_have_no_evidence() -> None:
    decisions = classify([*_batch(), "", "🎉🎉", "https://example.org/only-a-link"], [HEALTH_IT, CLIMATE])
    for d in decisions[-3:]:
        assert d.topics == ()
        assert d.scores == {"Health IT": 0.0, "Climate": 0.0}


def test_a_topic_nothing_matches_keeps_nothing() -> None:
    unmatched = Topic("Beekeeping", "Bees, hives and honey harvests.", ("beekeeping", "apiary", "honeybee"))
    decisions = classify(_batch(), [unmatched, HEALTH_IT])
    assert not any("Beekeeping" in d.topics for d in decisions)
    assert any("Health IT" in d.topics for d in decisions)


def test_threshold_override_and_exclude() -> None:
    batch = _batch()
    strict = Topic(**{**HEALTH_IT.__dict__, "threshold": 0.99})
    assert not any(d.topics for d in classify(batch, [strict]))
    ransomware = next(i for i, t in enumerate(batch) if "Ransomware" in t)
    plain = TopicFilter([HEALTH_IT]).fit(batch).decisions()[ransomware]
    noisy = Topic(**{**HEALTH_IT.__dict__, "exclude": ("ransomware", "attack")})
    excluded = TopicFilter([noisy]).fit(batch).decisions()[ransomware]
    assert excluded.scores["Health IT"] < plain.scores["Health IT"]
    assert excluded.topics == ()


def test_empty_batch_and_no_topics() -> None:
    assert TopicFilter([HEALTH_IT]).fit([]).decisions() == []
    decisions = classify(["hello world", "#FHIR news"], [])
    assert [d.topics for d in decisions] == [(), ()]


def test_same_input_same_output() -> None:
    batch = _batch()
    first = [d.to_json() for d in classify(batch, [HEALTH_IT, CLIMATE])]
    second = [d.to_json() for d in classify(batch, [HEALTH_IT, CLIMATE])]
    assert first == second


def test_decision_round_trips_through_json() -> None:
    decision = classify(_batch(), [HEALTH_IT, CLIMATE])[-1]
    stored = decision.to_json()
    assert json.loads(stored)["topics"] == ["Health IT"]
    assert Decision.from_json(stored) == decision


# --- explain ----------------------------------------------------------------------------------------------


def test_explain_names_the_words_that_weighed() -> None:
    batch = _batch()
    fitted = TopicFilter([HEALTH_IT, CLIMATE]).fit(batch)
    why = explain(fitted, len(batch) - 1, top=5)
    assert isinstance(why, Explanation)
    assert why.decision == fitted.decisions()[-1]
    assert why.text == normalize(FHIR_RELEASE)
    terms = why.terms["Health IT"]
    assert 0 < len(terms) <= 5
    assert [abs(w) for _, w in terms] == sorted((abs(w) for _, w in terms), reverse=True)
    assert dict(terms).get("fhir", 0) > 0
    lunch = fitted.explain(len(batch) - 2)
    assert all(w < 0 for _, w in lunch.terms["Health IT"][:2])


# --- evaluate ---------------------------------------------------------------------------------------------


def test_evaluate_small_csv() -> None:
    texts, labels = _small_csv()
    report = evaluate(texts, labels, [HEALTH_IT, CLIMATE])
    assert report["topics"]["Health IT"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 14}
    assert report["topics"]["Climate"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 12}
    assert report["off_topic"] == {"rows": 16, "dropped": 1.0}
    assert report["posts_per_second"] > 0
    json.dumps(report)  # plain numbers only, ready for `digest eval --json`


# --- the shared development set ---------------------------------------------------------------------------


def _dev_topics() -> list[Topic]:
    data = tomllib.loads((FIXTURES / "dev-topics.toml").read_text(encoding="utf-8"))
    return [Topic(t["name"], t.get("description", ""), tuple(t.get("keywords", ()))) for t in data["topics"]]


@pytest.fixture(scope="module")
def dev() -> tuple[list[str], list[set[str]]]:
    if not DEV_CSV.is_file():
        pytest.skip(f"labelled development set not found at {DEV_CSV} (it lives in shared/, beside the repo)")
    with DEV_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [{r["label"]} if r["label"] else set() for r in rows]


def test_dev_csv_meets_targets(dev: tuple[list[str], list[set[str]]]) -> None:
    texts, labels = dev
    report = evaluate(texts, labels, _dev_topics())
    healthcare = report["topics"]["Healthcare"]
    assert healthcare["support"] == 1500
    assert healthcare["f1"] >= 0.85, report
    assert report["off_topic"]["dropped"] >= 0.90, report


def test_dev_csv_narrow_topic_keeps_almost_nothing(dev: tuple[list[str], list[set[str]]]) -> None:
    texts, _ = dev
    kept = TopicFilter([HEALTH_IT]).fit(texts).kept()[:, 0]
    assert kept.sum() <= 0.01 * len(texts)


def test_any_order_of_the_same_posts_gives_the_same_decisions(dev: tuple[list[str], list[set[str]]]) -> None:
    texts = dev[0][:600]
    first = [d.to_json() for d in classify(texts, _dev_topics())]
    for seed in (1, 2):
        order = np.random.default_rng(seed).permutation(len(texts))
        shuffled = classify([texts[i] for i in order], _dev_topics())
        assert [shuffled[int(np.flatnonzero(order == i)[0])].to_json() for i in range(len(texts))] == first


def test_the_same_batch_gives_the_same_decisions_in_another_process(tmp_path: Path) -> None:
    """Nothing depends on the process: hash seeds, dict order, thread counts (a fresh interpreter)."""
    batch = _batch()
    here = [d.to_json() for d in classify(batch, [HEALTH_IT, CLIMATE])]
    script = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from topics.test_topics import CLIMATE, HEALTH_IT, _batch\n"
        "from digest.topics import classify\n"
        "print(json.dumps([d.to_json() for d in classify(_batch(), [HEALTH_IT, CLIMATE])]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(here))


def test_dev_csv_holds_across_week_sizes_and_topic_shares(dev: tuple[list[str], list[set[str]]]) -> None:
    """The default sweep (`digest eval --sweep`, 3 seeds): the band where the filter holds the issue's targets.

    Outside it (shares of 5-20% and 95%) the README lists the cells that still miss."""
    from digest.evaluate import sweep

    texts, labels = dev
    report = sweep(texts, labels, _dev_topics(), seeds=3)
    for cell in report["shares"]:
        if 0.35 <= cell["share"] <= 0.9:
            assert cell["f1"]["mean"] >= 0.80 and cell["chatter_dropped"]["mean"] >= 0.85, cell
        assert cell["f1"]["mean"] > cell["keyword_baseline"]["f1"], cell  # better than keywords everywhere
    for cell in report["sizes"]:
        if 60 <= cell["requested_n"] <= 250:
            assert cell["f1"]["mean"] >= 0.78 and cell["recall"]["min"] >= 0.5, cell
            assert cell["chatter_dropped"]["min"] >= 0.6, cell


def test_a_noise_word_that_inflects_a_topic_keyword_stays_noise() -> None:
    """`game` (a Sports keyword) inflects to `gaming`, which the noise profile names: a gaming post is chatter's
    evidence, not a Sports seed; `games` is still the topic's own word."""
    sports = Topic(name="Sports", description="Sports results", keywords=("game", "match", "team"))
    posts = [
        "Streaming some gaming tonight on the new console",
        "The home team won the game in overtime",
        "Two games this weekend for the team",
    ]
    from digest.textnorm import normalize_many
    from digest.topics import DEFAULT_NOISE
    from digest.topics._batch import _Batch
    from digest.topics._evidence import _evidence

    ev = _evidence(_Batch(normalize_many(posts)), [sports], DEFAULT_NOISE)
    assert ("gaming",) in {k[0] for k in ev.noise_keywords}
    assert ev.seeds(np.ones(3, dtype=bool)).tolist() == [-1, 0, 0]  # gaming: topic 1 = noise 1, no seed


def test_in_a_tiny_week_a_post_whose_keywords_tie_between_topics_is_kept_under_both() -> None:
    """Too few posts to place a threshold, so keywords decide: a tie names both topics, it never drops the post."""
    records = Topic(name="Health IT", description="Electronic health records", keywords=("EHR", "#HITsm"))
    interop = Topic(name="Interoperability", description="Exchanging health data", keywords=("FHIR", "API"))
    posts = [
        "T2: what is the one FHIR API your organization wishes every EHR vendor supported today? #HITsm",
        "Our EHR upgrade went live overnight",
        "New FHIR implementation guide published",
        "Lunch on the unit: samosas for everyone",
        "The tulips in the courtyard are out early",
    ]
    decisions = TopicFilter([records, interop]).fit(posts).decisions()
    assert set(decisions[0].topics) == {"Health IT", "Interoperability"}
    assert decisions[1].topics == ("Health IT",) and decisions[2].topics == ("Interoperability",)
    assert decisions[3].topics == decisions[4].topics == ()


def test_a_topic_rare_in_its_week_needs_more_to_be_kept(
    dev: tuple[list[str], list[set[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a week that is 5% topic, even odds still mean chatter: the topic's threshold rises with its rarity
    (`_prior_shift`), which keeps fewer chatter posts and scores better than the balanced threshold on the
    same batches. In a week that is mostly topic, nothing moves, so the little chatter it has stays dropped."""
    from digest.evaluate import sample_rows, score
    from digest.topics import _filter as topics

    texts, labels = dev
    on_topic = np.array([bool(label) for label in labels])

    def f1_and_shift(share: float, weight: float) -> tuple[float, float]:
        monkeypatch.setattr(topics, "_PRIOR_WEIGHT", weight)
        f1s, shifts = [], []
        for seed in range(3):
            rows = sample_rows(on_topic, share, 900, np.random.default_rng((7, seed))).tolist()
            fitted = TopicFilter(_dev_topics()).fit([texts[i] for i in rows])
            kept = [set(d.topics) for d in fitted.decisions()]
            f1s.append(score([labels[i] for i in rows], kept, ["Healthcare"])["topics"]["Healthcare"]["f1"])
            shifts.append(float(fitted._prior[0]))
        return float(np.mean(f1s)), float(np.mean(shifts))

    weight = topics._PRIOR_WEIGHT
    balanced, none = f1_and_shift(0.05, 0.0)
    shifted, shift = f1_and_shift(0.05, weight)
    assert none == 0.0 and shift < -0.3, shift  # about 0.3 x log(9% / 91%) in log-odds
    assert shifted > balanced + 0.005, (balanced, shifted)  # +0.013 beside the threshold's split pull
    assert f1_and_shift(0.95, weight)[1] == 0.0


def test_chatter_that_names_no_noise_word_is_dropped_where_the_week_splits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chatter seeds are the chatter that names a noise word, and they score lowest: a threshold placed only
    above them keeps the chatter that names none (multi-dev's entertainment posts under Business or Sports).
    Pulled toward where the week's own scores split in two (`_two_groups_cut`), it drops most of that too."""
    from digest import config
    from digest.evaluate import read_labelled, sample_rows, score
    from digest.pipeline import noise_profile
    from digest.topics import _filter

    path = DEV_CSV.parent / "multi-dev.csv"
    if not path.is_file():
        pytest.skip(f"labelled development set not found at {path} (it lives in shared/, beside the repo)")
    settings = config.load(FIXTURES / "multi-topics.toml")
    texts, labels = read_labelled(str(path))
    on_topic = np.array([bool(label) for label in labels])
    names = [t.name for t in settings.topics]

    def dropped_and_f1(pull: float) -> tuple[float, float]:
        monkeypatch.setattr(_filter, "_SPLIT_PULL", pull)
        drops, f1s = [], []
        for seed in range(3):
            rows = sample_rows(on_topic, 0.5, 900, np.random.default_rng((7, seed))).tolist()
            fitted = TopicFilter(settings.topics, noise=noise_profile(settings)).fit([texts[i] for i in rows])
            report = score([labels[i] for i in rows], [set(d.topics) for d in fitted.decisions()], names)
            drops.append(report["off_topic"]["dropped"])
            f1s.append(report["macro_f1"])
        return float(np.mean(drops)), float(np.mean(f1s))

    pull = _filter._SPLIT_PULL
    seeds_only, split = dropped_and_f1(0.0), dropped_and_f1(pull)
    assert seeds_only[0] < 0.85 and split[0] >= 0.9, (seeds_only, split)  # 0.847 -> 0.909
    assert split[1] > seeds_only[1], (seeds_only, split)


def test_the_two_groups_cut_falls_between_them() -> None:
    from digest.topics._filter import _two_groups_cut

    values = np.r_[np.random.default_rng(0).normal(-2, 0.5, 800), np.random.default_rng(1).normal(3, 0.5, 200)]
    assert -1.0 < _two_groups_cut(values) < 2.0
    assert _two_groups_cut(values) == _two_groups_cut(values[::-1])  # the order of the posts never matters


def test_counting_terms_a_few_thousand_posts_at_a_time_gives_the_one_pass_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from digest.topics import _batch

    docs = [f"fhir {i % 7} hl7 word{i % 13} " * (1 + i % 3) for i in range(2_500)] + ["", "lone"]
    monkeypatch.setattr(_batch, "_COUNT_CHUNK", 10**9)  # one pass over all the words
    terms, counts = _batch._count_terms(docs)
    for chunk in (1, 7, 1_000):  # a chunk boundary inside the batch, at every post, and none
        monkeypatch.setattr(_batch, "_COUNT_CHUNK", chunk)
        chunked_terms, chunked = _batch._count_terms(docs)
        assert chunked_terms == terms and chunked.shape == counts.shape and (chunked != counts).nnz == 0
