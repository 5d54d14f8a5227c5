"""Deterministic synthetic posts for the filter, compose, send and weekly benchmarks.

Nothing here reads shared data: the vocabulary is written below. A post is one to three sentences,
on one of the benchmark topics (health IT, interoperability, digital health, public health, AI in
healthcare, and for the composer privacy & security) or everyday chatter, with the furniture of
real Mastodon and Bluesky posts: hashtags, @handles, URLs, emoji, numbers, and a long tail of rare
words (names, product codes) so that the batch vocabulary grows as a real one does.

`texts` gives filter documents (what `Post.document()` returns) with their true topics;
`posts` gives full `Post` objects with realistic HTML (Mastodon's hashtag and mention markup,
links with invisible/ellipsis spans, images with alt text, content warnings, boosts, cross-posts,
long feed articles) for the composer and the store.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from html import escape
from itertools import accumulate
from typing import Any

__all__ = [
    "FILTER_TOPICS",
    "PRIVACY_TOPIC",
    "SELECTIONS",
    "TOPICS",
    "LabelledText",
    "TopicDef",
    "posts",
    "selections",
    "store_posts",
    "store_subscribers",
    "texts",
    "topics_toml",
]


@dataclass(frozen=True, slots=True)
class TopicDef:
    """What ``[[topics]]`` holds: satisfies digest's `TopicSpec` (examples, exclude empty; no threshold)."""

    name: str
    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    threshold: float | None = None


HEALTH_IT = TopicDef(
    "Health IT",
    "Electronic health records and the clinical systems hospitals and practices run on: EHR and EMR "
    "rollouts and go-lives, clinical documentation, order entry, patient portals, clinical informatics "
    "and the people who run health IT.",
    (
        "EHR", "EMR", "electronic health record", "Epic", "Oracle Health", "Cerner", "health IT", "#HealthIT",
        "#HITsm", "CPOE", "clinical documentation", "patient portal", "go-live", "CMIO", "clinical informatics",
        "HIMSS", "MEDITECH",
    ),
)  # fmt: skip
INTEROP = TopicDef(
    "Interoperability",
    "Exchanging health data between systems and organizations: HL7 and FHIR standards and APIs, health "
    "information exchanges, TEFCA and QHINs, C-CDA documents, USCDI and information blocking rules.",
    (
        "FHIR", "HL7", "interoperability", "#interoperability", "#FHIR", "TEFCA", "QHIN", "HIE",
        "health information exchange", "C-CDA", "SMART on FHIR", "USCDI", "information blocking", "Carequality",
        "CommonWell", "IHE", "data exchange", "Bulk FHIR",
    ),
)  # fmt: skip
DIGITAL = TopicDef(
    "Digital health",
    "Care delivered and supported through technology outside the hospital walls: telehealth and virtual "
    "visits, remote patient monitoring, wearables, health apps, digital therapeutics and hospital at home.",
    (
        "digital health", "#digitalhealth", "telehealth", "#telehealth", "telemedicine", "virtual care",
        "remote patient monitoring", "RPM", "wearable", "health app", "digital therapeutics", "mHealth",
        "hospital at home", "patient engagement", "virtual visit",
    ),
)  # fmt: skip
PUBLIC = TopicDef(
    "Public health",
    "The health of populations: disease surveillance and outbreaks, vaccination and immunization "
    "registries, epidemiology, case reporting, health departments, health equity and prevention.",
    (
        "public health", "#publichealth", "epidemiology", "epidemiologist", "outbreak", "surveillance",
        "vaccination", "vaccine", "immunization", "CDC", "measles", "influenza", "wastewater", "case reporting",
        "syndromic surveillance", "health equity", "health department",
    ),
)  # fmt: skip
AI = TopicDef(
    "AI in healthcare",
    "Artificial intelligence and machine learning in medicine: clinical prediction models, large language "
    "models and ambient scribes, radiology AI, model validation, bias and the regulation of AI tools.",
    (
        "artificial intelligence", "AI", "#AIinHealthcare", "machine learning", "LLM", "large language model",
        "ambient scribe", "generative AI", "predictive model", "algorithm", "deep learning", "model validation",
        "ChatGPT", "radiology AI",
    ),
)  # fmt: skip
PRIVACY_TOPIC = TopicDef(
    "Privacy & security",
    "Keeping health data private and systems safe: HIPAA, breaches, ransomware, cybersecurity, consent "
    "and patient privacy.",
    (
        "HIPAA", "privacy", "breach", "ransomware", "cybersecurity", "#infosec", "phishing", "MFA", "consent",
        "data breach",
    ),
)  # fmt: skip
FILTER_TOPICS = (HEALTH_IT, INTEROP, DIGITAL, PUBLIC, AI)
TOPICS = (*FILTER_TOPICS, PRIVACY_TOPIC)


def topics_toml(topics: tuple[TopicDef, ...] = TOPICS) -> str:
    """The topics as ``[[topics]]`` tables of a feeds.toml."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(
        f"[[topics]]\nname = {q(t.name)}\ndescription = {q(t.description)}\n"
        f"keywords = [{', '.join(q(k) for k in t.keywords)}]\n\n"
        for t in topics
    )


# -- vocabulary --------------------------------------------------------------------------------

_ORGS = (
    "Mercy General", "St. Luke's", "Riverside Health", "Northwell", "the VA", "Kaiser", "Mass General",
    "our health system", "the county hospital", "a rural critical access hospital", "Intermountain", "the NHS trust",
    "UCSF", "Mayo", "a community clinic", "the children's hospital",
)  # fmt: skip
_PLACES = (
    "Ohio", "Texas", "Ontario", "Bavaria", "Kenya", "Queensland", "the Midwest", "Scotland", "Lagos", "Chile",
    "Manitoba", "Catalonia", "Kerala", "Oregon", "Wales",
)  # fmt: skip
_MONTHS = ("January", "March", "April", "June", "September", "October", "November", "December")
_EMOJI = ("🎉", "🙌", "🔥", "😂", "☕", "🧵", "👇", "💡", "🤔", "✅", "📊", "🏥", "💉", "🤖", "😅", "👏", "🚀", "❤️")

# {o} org, {p} place, {n} number, {m} month, {w} rare word
_ON: dict[str, tuple[str, ...]] = {
    "Health IT": (
        "Our EHR go-live at {o} went better than expected, {n} clinicians trained in two weeks.",
        "Clinical documentation burden is still the top complaint from nurses after the Epic upgrade.",
        "The CMIO at {o} says CPOE order sets were rebuilt from scratch for the new EMR.",
        "Patient portal sign-ups reached {n}% this {m}, mostly from the after-visit summary link.",
        "Downtime procedures matter: the EHR was offline for {n} hours and paper charts saved us.",
        "Clinical informatics fellows presented their inbox management project at HIMSS.",
        "Moving from MEDITECH to Oracle Health is a {n}-month project for a hospital our size.",
        "Why does every electronic health record still make a simple med reconciliation take twelve clicks?",
        "Health IT leaders at {o} are consolidating {n} legacy systems into one EHR instance.",
        "Alert fatigue study: {n}% of clinical decision support alerts in our EMR were overridden.",
        "Great thread on optimizing Epic In Basket workflows for primary care physicians.",
        "The health IT team finally retired the old lab interface after {n} years.",
    ),
    "Interoperability": (
        "The FHIR R6 ballot is open and the {w} resource changes matter for implementers.",
        "TEFCA now has {n} participants exchanging records through the QHINs.",
        "We mapped HL7 v2 ADT feeds to FHIR Encounter resources for the HIE in {p}.",
        "Information blocking complaints doubled this year according to the latest ONC report.",
        "Bulk FHIR export of {n} million resources a night works, but the payer API still times out.",
        "SMART on FHIR apps launched from the EHR cut our integration time by half.",
        "USCDI v5 adds new data elements and every vendor needs to support them by {m}.",
        "Health information exchange in {p} finally connects the public labs and the clinics.",
        "C-CDA documents are still how most hospitals share summaries, FHIR or not.",
        "Carequality and CommonWell now route queries to {n} thousand sites.",
        "Interoperability is a people problem: data exchange agreements took longer than the APIs.",
        "The IHE connectathon in {p} tested {n} FHIR profiles this week.",
    ),
    "Digital health": (
        "Telehealth visits at {o} are steady at {n}% of outpatient care after the pandemic peak.",
        "Remote patient monitoring for heart failure cut readmissions by {n}% in our pilot.",
        "A wearable that tracks blood pressure continuously got cleared for home use.",
        "Hospital at home programs in {p} now treat {n} patients a day.",
        "Digital therapeutics for insomnia are finally covered by one big insurer.",
        "Our virtual care team runs video visits for rural patients who live {n} miles away.",
        "Patient engagement apps only work if they fit into the clinic's workflow.",
        "mHealth study: {n}% of users stopped opening the health app after a month.",
        "Telemedicine reimbursement rules change again in {m}, clinics need to plan now.",
        "Virtual visit quality depends more on broadband than on the software.",
        "Remote monitoring data floods the nurses unless someone triages it.",
        "Digital health funding dropped this quarter but the survivors have real revenue.",
    ),
    "Public health": (
        "Measles cases in {p} reached {n} this {m}, and vaccination rates keep falling.",
        "Wastewater surveillance picked up the influenza wave two weeks before the clinics did.",
        "The health department in {p} launched electronic case reporting for {n} conditions.",
        "Epidemiologists are tracking an outbreak of hepatitis A linked to frozen berries.",
        "Immunization registry data shows {n}% of kindergartners are fully vaccinated.",
        "CDC guidance on respiratory virus season was updated today.",
        "Syndromic surveillance dashboards need stable funding, not emergency grants.",
        "Health equity work means looking at who cannot reach the vaccine clinic.",
        "Public health labs in {p} sequenced {n} samples last week.",
        "Outbreak response depends on the data pipelines built before the outbreak.",
        "Vaccine hesitancy dropped after community health workers went door to door in {p}.",
        "Life expectancy in {p} rose again, the public health report says.",
    ),
    "AI in healthcare": (
        "Ambient AI scribes cut note time by {n}% in our pilot but clinicians still review every note.",
        "A sepsis prediction model lost accuracy when it moved to a new hospital, model validation matters.",
        "Large language models drafted patient message replies that nurses rated as more empathetic.",
        "The FDA has now cleared {n} AI-enabled medical devices, most of them radiology AI.",
        "Machine learning for readmission risk keeps rediscovering that sick patients are sick.",
        "Generative AI in the EHR needs guardrails, said the panel at {o}.",
        "Algorithmic bias audit: the predictive model underestimated risk for {n}% of Black patients.",
        "Deep learning reads chest x-rays fast, but who is liable when it misses a nodule?",
        "We tested ChatGPT on {n} board exam questions and it still invents citations.",
        "Artificial intelligence governance committees are popping up at every academic medical center.",
        "An LLM summarizing discharge notes left out the allergy list in {n} of 200 cases.",
        "AI triage in the emergency department reduced wait times in {p}.",
    ),
    "Privacy & security": (
        "Ransomware took {o} offline for {n} days and ambulances were diverted.",
        "The HIPAA Security Rule update makes MFA and encryption required safeguards.",
        "A data breach at a billing vendor exposed {n} thousand patient records.",
        "Phishing tests at {o}: {n}% of staff clicked the fake payroll link.",
        "Consent management for research data is still done on paper in {p}.",
        "Cybersecurity budgets in hospitals are a fraction of what banks spend.",
    ),
}
_OFF = (
    "Lunch today was the best ramen in town, totally worth the wait {e}",
    "My cat sat on the keyboard during standup again {e}",
    "What a match last night, the league title comes down to the final game!",
    "Finally finished the book everyone recommended, the ending was a letdown.",
    "The dahlias in the garden are blooming, first sunny weekend in weeks.",
    "Anyone else stuck in traffic on the bridge this morning? {n} minutes and counting.",
    "New album from my favourite band dropped and it is on repeat {e}",
    "Baking sourdough for the {n}th time, this loaf actually rose.",
    "Happy birthday to my little sister, {n} years old today {e}",
    "The new phone battery lasts two days, impressed.",
    "Our team won the pub quiz, the music round saved us.",
    "Hiking in {p} this weekend, bring on the mountains.",
    "Rainy Monday, coffee number three {e}",
    "Watched the whole series in one weekend, no regrets.",
    "The puppy learned to sit! Training classes paid off.",
    "Meetings all day and nothing got done, classic Tuesday.",
    "Recipe of the week: lentil soup with smoked paprika and lemon.",
    "Moving apartments is the worst, {n} boxes and still packing.",
    "The bakery on the corner closed, end of an era {e}",
    "Kids' football tournament in {p} this weekend, wish us luck.",
    "Trying to learn the guitar at {n}, my fingers hurt.",
    "That movie trailer looks amazing, can't wait for {m}.",
    "Weekend plans: nothing. Absolutely nothing {e}",
    "The sunset over the lake tonight was unreal.",
    "Playing the new video game until 2am was a mistake.",
    "Tried the new taco place downtown, the salsa was great.",
    "My vacation photos from {p} are finally sorted.",
    "Crypto is down again, glad I never bought any.",
    "The wedding was beautiful and the dance floor never emptied.",
    "Fashion week outfits are getting weirder every year.",
)
_ON_TAGS: dict[str, tuple[str, ...]] = {
    "Health IT": ("HealthIT", "HITsm", "EHR", "Epic", "nursing", "informatics", "CMIO"),
    "Interoperability": ("FHIR", "HL7", "interoperability", "TEFCA", "HIE", "healthdata"),
    "Digital health": ("digitalhealth", "telehealth", "DigitalHealth", "RPM", "wearables", "mHealth"),
    "Public health": ("publichealth", "epidemiology", "vaccines", "measles", "flu", "PublicHealth"),
    "AI in healthcare": ("AIinHealthcare", "AI", "MachineLearning", "LLM", "HealthAI", "GenAI"),
    "Privacy & security": ("infosec", "HIPAA", "privacy", "cybersecurity", "ransomware"),
}
_OFF_TAGS = (
    "coffee", "caturday", "gardening", "football", "nowplaying", "photography", "foodie", "running", "books",
    "MondayMotivation", "weekend", "travel", "dogsofmastodon", "baking", "hiking", "music", "movies", "gaming",
)  # fmt: skip
_FIRST = (
    "Ana", "Ben", "Chloé", "Dario", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Lars", "Maya",
    "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomás", "Uma", "Viktor", "Wen", "Yara", "Zoe", "Ade",
    "Bea", "Karl", "Mia", "Raj",
)  # fmt: skip
_LAST = (
    "Moreau", "Okafor", "Lindqvist", "Tanaka", "Rossi", "Nguyen", "Haddad", "Kowalski", "Silva", "Müller",
    "O'Brien", "Patel", "Schmidt", "Costa", "Ruiz", "Chen", "Grieve", "Novak",
)  # fmt: skip
_SERVERS = (
    "mastodon.social", "hachyderm.io", "fosstodon.org", "med-mastodon.com", "mstdn.science", "infosec.exchange",
    "mas.to", "mastodon.online", "techhub.social", "fhir.social",
)  # fmt: skip
_LINK_HOSTS = (
    "www.healthit.gov", "build.fhir.org", "www.hl7.org", "www.cdc.gov", "www.statnews.com", "www.fiercehealthcare.com",
    "www.nature.com", "news.example.org", "blog.example.com", "www.nejm.org", "www.bbc.co.uk", "www.theverge.com",
)  # fmt: skip
_ALTS = (
    "Screenshot of a FHIR Patient resource in JSON with the identifier array highlighted.",
    "Line chart: portal sign-ups rising from 12% in January to 48% in October.",
    "A whiteboard covered in sticky notes grouped by workflow step.",
    "Bar chart of measles cases by county, highest in the north.",
    "A cup of coffee next to a laptop showing a slide deck.",
    "Photo of a conference hall with a banner reading Interoperability Showcase.",
    "A cat asleep on a keyboard.",
    "A bowl of ramen with a soft egg.",
)
_SYLLABLES = (
    "ka", "lo", "mi", "ven", "tor", "sa", "ri", "del", "pho", "gan", "zu", "ber", "quin", "ta", "mo", "rex",
    "li", "dor", "fen", "ax", "ul", "bri", "cor", "nes",
)  # fmt: skip


def _rare_words(count: int, seed: int) -> list[str]:
    """A long tail of made-up names and codes (the batch vocabulary of real posts keeps growing)."""
    rng = random.Random(f"{seed}:rare")
    words = set()
    while len(words) < count:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.15:
            word = f"{word.upper()[:3]}-{rng.randint(10, 9999)}"
        elif rng.random() < 0.5:
            word = word.capitalize()
        words.add(word)
    return sorted(words)


class _Writer:
    """Draws sentences, hashtags and post furniture with one seeded random stream."""

    def __init__(self, seed: int, topics: tuple[TopicDef, ...]) -> None:
        self.rng = random.Random(seed)
        self.topics = topics
        self.rare = _rare_words(20_000, seed)
        # Zipf-like: a few rare words are common, most appear once or twice in 100k posts
        self.rare_cum = list(accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(self.rare))))

    def fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            o=r.choice(_ORGS),
            p=r.choice(_PLACES),
            n=r.choice((3, 5, 12, 18, 24, 40, 64, 120, 500, 1200)),
            m=r.choice(_MONTHS),
            w=r.choice(self.rare),
            e=r.choice(_EMOJI),
        )

    def label(self) -> tuple[str, ...]:
        """A post's true topics: ~45% on topic (1 in 8 of those on two), the rest chatter."""
        r = self.rng.random()
        if r < 0.55:
            return ()
        first = self.rng.choice(self.topics).name
        if r < 0.55 + 0.45 / 8:
            second = self.rng.choice([t.name for t in self.topics if t.name != first])
            return (first, second)
        return (first,)

    def sentences(self, labels: tuple[str, ...]) -> list[str]:
        r = self.rng
        out = [self.fill(r.choice(_ON[name])) for name in labels]
        if not labels or r.random() < 0.25:  # chatter, or an aside in an on-topic post
            out.append(self.fill(r.choice(_OFF)))
        if not labels and r.random() < 0.3:
            out.append(self.fill(r.choice(_OFF)))
        if r.random() < 0.4:
            out.append(" ".join(r.choices(self.rare, cum_weights=self.rare_cum, k=r.randint(1, 3))) + ".")
        if len(out) > 1 and labels:
            r.shuffle(out)
        return out

    def tags(self, labels: tuple[str, ...]) -> list[str]:
        r = self.rng
        tags = [r.choice(_ON_TAGS[name]) for name in labels if r.random() < 0.6]
        if r.random() < (0.5 if not labels else 0.15):
            tags.append(r.choice(_OFF_TAGS))
        return list(dict.fromkeys(tags))

    def handle(self) -> tuple[str, str]:
        r = self.rng
        first, last = r.choice(_FIRST), r.choice(_LAST)
        user = f"{first.lower().replace('é', 'e').replace('á', 'a')}{r.randrange(300)}"
        return f"{first} {last}", f"@{user}@{r.choice(_SERVERS)}"

    def link(self) -> str:
        r = self.rng
        slug = "-".join(w.lower() for w in r.sample(_SYLLABLES, 3))
        return f"https://{r.choice(_LINK_HOSTS)}/news/{r.randrange(10**6)}-{slug}"


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    topics: tuple[str, ...]


def texts(n: int, *, seed: int = 7, topics: tuple[TopicDef, ...] = FILTER_TOPICS) -> list[LabelledText]:
    """``n`` filter documents (body, inline hashtags, handles, URLs, emoji, trailing tags) with their topics."""
    w = _Writer(seed, topics)
    r = w.rng
    out = []
    for _ in range(n):
        labels = w.label()
        parts = w.sentences(labels)
        if r.random() < 0.3:
            parts.insert(0, w.handle()[1])
        if r.random() < 0.35:
            parts.append(w.link())
        if r.random() < 0.3:
            parts.append(r.choice(_EMOJI))
        tags = w.tags(labels)
        text = " ".join(parts)
        if tags:
            text += "\n" + " ".join(f"#{t}" for t in tags)
        out.append(LabelledText(text, labels))
    return out


# -- full posts --------------------------------------------------------------------------------


def _hashtag_html(server: str, tag: str) -> str:
    return f'<a href="https://{server}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'


def _link_html(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return (
        f'<a href="{escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{scheme}://</span><span class="ellipsis">{escape(rest[:30])}</span>'
        f'<span class="invisible">{escape(rest[30:])}</span></a>'
    )


def posts(
    n: int,
    *,
    now: datetime,
    seed: int = 11,
    sources: list[str] | None = None,
    topics: tuple[TopicDef, ...] = TOPICS,
    days: float = 6.5,
) -> tuple[list[object], dict[str, tuple[str, ...]]]:
    """``n`` posts published over the ``days`` before ``now``, and each post id's true topics.

    With ``sources`` (feed URLs), post ``i`` comes from ``sources[i % len(sources)]`` (key
    ``feed:URL``); otherwise from a mix of Mastodon accounts, hashtags, Bluesky and news feeds.
    About 1 in 40 posts is a boost of an earlier one and 1 in 60 a cross-post to Bluesky (merged
    by the composer); a few hundred links are shared by several accounts.
    """
    from digest.models import Author, Engagement, Media, Post
    from digest.urls import canonical_url, post_id

    w = _Writer(seed, topics)
    r = w.rng
    authors = [w.handle() for _ in range(max(50, n // 15))]
    popular = [w.link() for _ in range(max(20, n // 200))]  # links several accounts share
    out: list[Post] = []
    truth: dict[str, tuple[str, ...]] = {}
    span = timedelta(days=days).total_seconds()
    for i in range(n):
        labels = w.label()
        published = now - timedelta(seconds=span * (i + 0.5) / n + r.random() * 60)
        name, handle = r.choice(authors)
        user, server = handle[1:].split("@")
        if sources:
            source = f"feed:{sources[i % len(sources)]}"
        else:
            source = r.choice((f"mastodon:{handle}", f"mastodon:{handle}", "hashtag:#FHIR@mastodon.social"))
        if out and r.random() < 1 / 40 and not sources:  # a boost of an earlier post
            original = r.choice(out[-200:])
            booster = r.choice(authors)[1]
            out.append(replace(original, source=f"mastodon:{booster}", is_boost=True, boosted_by=booster))
            continue
        sentences = w.sentences(labels)
        tags = w.tags(labels)
        links: list[str] = []
        body = " ".join(escape(s) for s in sentences)
        if r.random() < 0.3:
            other = r.choice(authors)[1]
            ouser, oserver = other[1:].split("@")
            body = (
                f'<span class="h-card" translate="no"><a href="https://{oserver}/@{ouser}" class="u-url mention">'
                f"@<span>{ouser}</span></a></span> {body}"
            )
        if r.random() < 0.4:
            url = r.choice(popular) if r.random() < 0.5 else w.link()
            if r.random() < 0.3:
                url += "?utm_source=mastodon&utm_medium=social"
            links.append(canonical_url(url))
            body += " " + _link_html(url)
        paragraphs = [f"<p>{body}</p>"]
        title = ""
        if not sources and r.random() < 0.05:  # a long feed article
            title = w.fill(r.choice(_ON[labels[0]] if labels else _OFF)).rstrip(".!?")
            bank = [_ON[lab] for lab in labels] or [_OFF]
            paragraphs += [
                "<p>" + " ".join(escape(w.fill(r.choice(r.choice(bank)))) for _ in range(3)) + "</p>" for _ in range(4)
            ]
        if tags:
            paragraphs.append("<p>" + " ".join(_hashtag_html(server, t) for t in tags) + "</p>")
        media = ()
        if r.random() < 0.2:
            media = tuple(
                Media(f"https://files.{server}/media/{r.getrandbits(48):012x}.png", "image", r.choice(_ALTS))
                for _ in range(r.choice((1, 1, 2)))
            )
        text_parts = [*sentences, *links]
        uri = f"https://{server}/@{user}/{113_000_000_000_000_000 + i * 7919 + seed}"
        post = Post(
            id=post_id(uri),
            uri=uri,
            source=source,
            url=uri,
            published=published,
            author=Author(name, handle, f"https://{server}/@{user}"),
            title=title,
            text=" ".join(text_parts),
            html="".join(paragraphs),
            language="en",
            tags=tuple(tags),
            mentions=(),
            links=tuple(links),
            media=media,
            content_warning="spoilers" if r.random() < 0.02 else "",
            sensitive=bool(media) and r.random() < 0.05,
            engagement=Engagement(r.randrange(20), r.randrange(80), r.randrange(300), None)
            if not source.startswith("feed:")
            else Engagement(),
        )
        out.append(post)
        truth[post.id] = labels
        if not sources and r.random() < 1 / 60:  # the same text cross-posted to Bluesky
            bsky = f"{user}.bsky.social"
            buri = f"at://did:plc:{user}/app.bsky.feed.post/{i}"
            out.append(
                Post(
                    id=post_id(buri),
                    uri=buri,
                    source=f"bluesky:{bsky}",
                    url=f"https://bsky.app/profile/{bsky}/post/{i}",
                    published=published + timedelta(seconds=30),
                    author=Author(name, bsky, f"https://bsky.app/profile/{bsky}"),
                    text=post.text,
                    html=post.html,
                    links=post.links,
                )
            )
    return out, truth


# 20 distinct topic selections over the six topics: every single topic, 8 pairs, 4 triples, one of four, all.
SELECTIONS: tuple[tuple[str, ...], ...] = (
    *((t.name,) for t in TOPICS),
    *((TOPICS[a].name, TOPICS[b].name) for a, b in ((0, 1), (0, 4), (1, 4), (2, 3), (3, 4), (1, 5), (0, 5), (2, 4))),
    *((TOPICS[a].name, TOPICS[b].name, TOPICS[c].name) for a, b, c in ((0, 1, 4), (1, 2, 3), (0, 4, 5), (2, 3, 4))),
    (TOPICS[0].name, TOPICS[1].name, TOPICS[2].name, TOPICS[4].name),
    tuple(t.name for t in TOPICS),
)


def selections(count: int, seed: int = 3) -> list[tuple[str, ...]]:
    """``count`` subscribers' topic selections, each one of `SELECTIONS` (every one used when count >= 20)."""
    rng = random.Random(seed)
    chosen = [SELECTIONS[i % len(SELECTIONS)] for i in range(count)]
    rng.shuffle(chosen)
    return chosen


# -- filling a store (benchmark setup, untimed) -----------------------------------------------------


def store_posts(store: Any, items: list[Any], states: dict[str, Any] | None = None) -> int:
    """Add posts with the store API, one `Store.add_posts` per source (with its state when given)."""
    by_source: dict[str, list[Any]] = {}
    for post in items:
        by_source.setdefault(post.source, []).append(post)
    states = states or {}
    return sum(store.add_posts(source, group, states.get(source)) for source, group in by_source.items())


def store_subscribers(store: Any, readers: list[tuple[str, str, tuple[str, ...]]], now: datetime) -> None:
    """Confirmed web subscribers (address, name, topics) in one transaction; `Store.add_subscriber`
    does the same one transaction per address, too slow for 10,000 in a benchmark's setup."""
    from digest.store import subscribers

    rows = [
        {
            "email": email.lower(),
            "name": name,
            "topics": list(topics),
            "status": "confirmed",
            "origin": "web",
            "bounces": 0,
            "created_at": now,
            "updated_at": now,
        }
        for email, name, topics in readers
    ]
    with store.engine.begin() as conn:
        conn.execute(subscribers.insert(), rows)
