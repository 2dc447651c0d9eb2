"""The rule language: each construct matched and not matched, errors with positions, explanations, defaults.

Every text here is written for the test. `matches()` also checks that the fast pass (match_article) and the
explaining pass (explain) agree, so each row pins both.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from watcher.config import config_from_dict
from watcher.errors import RuleError
from watcher.models import Match
from watcher.rules import CompiledTopic, TopicConfig, compile_topic, compile_topics, explain, match_article
from watcher.rules.text import CJK, CYRILLIC, HANGUL, ArticleText

TERMS = {
    "dprk": '"North Korea" OR "North Korean" OR DPRK OR Pyongyang OR "Kim Jong Un" OR 북한 OR КНДР',
    "russia": "Russia OR Russian OR Moscow OR 러시아 OR Россия",
    "weapons": "drone OR missile OR @shells",
    "shells": "shell OR artillery",
}


def topic(rule: str, *, terms: dict[str, str] | None = None, min_score: float = 1.0, name: str = "t") -> CompiledTopic:
    return compile_topic(TopicConfig(name=name, rule=rule, min_score=min_score), TERMS if terms is None else terms)


def matches(rule: str, title: str, body: str = "", **kw) -> bool:
    t = topic(rule, **kw)
    found = match_article([t], title, body)
    assert explain(t, title, body).matched == bool(found), "match_article and explain disagree"
    return bool(found)


# --- words, word forms, case, diacritics -----------------------------------------------------------------------

WORDS = [
    # rule, title, body, expected
    ("drone", "Drones over the city", "", True),
    ("drones", "A drone was seen", "", True),
    ("DRONE", "a drone", "", True),
    ("deploy", "Troops deployed to the border", "", True),
    ("deploy", "The deployment of troops", "", True),
    ("deploy", "Army deploying units", "", True),
    ("deployment", "They deploy troops", "", True),
    ("supply", "Iran supplies drones", "", True),
    ("supply", "Iran supplied drones", "", True),
    ("supply", "a supplier of parts", "", False),  # a different word: write supplier or suppl*
    ("send", "Seoul sent envoys", "", True),
    ("withdraw", "The withdrawal of troops", "", True),
    ("withdraw", "France withdrew its troops", "", True),
    ("ship", "The shipment arrived", "", True),
    ("unit", "The United Nations met", "", False),  # united is not unit
    ("new", "Latest news from Kyiv", "", False),  # news is not new
    ("cafe", "Un café à Paris", "", True),  # diacritics folded both ways
    ("café", "A cafe in Paris", "", True),
    ("Zurich", "Talks in Zürich", "", True),
    ("us", "U.S. troops arrive", "", True),  # dotted acronyms lose their dots
    ("U.S.", "US troops arrive", "", True),
    ("Russia", "Russia's army", "", True),  # possessive
    ("Russia", "Russia’s army", "", True),
    ("drone", "Dronelike toys", "", False),  # words, not substrings
    ("drone", "", "The body mentions a drone.", True),
    ("3000", "3,000 troops", "", True),  # numbers keep their separators together
    ('"1.5 million"', "1.5 million people", "", True),
    ('"5 million"', "1.5 million people", "", False),
]


@pytest.mark.parametrize("rule,title,body,expected", WORDS)
def test_words_match_their_forms_case_and_diacritics_aside(rule, title, body, expected):
    assert matches(rule, title, body) is expected


EXACT_AND_PREFIX = [
    ("=drone", "A drone", True),
    ("=drone", "Drones", False),
    ("=US", "U.S. officials", True),
    ("deploy*", "redeployment", False),  # a prefix starts the word
    ("deploy*", "deployments", True),
    ("deploy*", "Deployable units", True),
    ("manufactur*", "Manufacturers say", True),
    ("co-operat*", "co-operation with Iran", True),  # a hyphenated word is a phrase; * ends its last word
    ('"drone manufactur*"', "drone manufacturing plant", True),
    ('"drone manufactur*"', "manufacturing drones", False),
]


@pytest.mark.parametrize("rule,title,expected", EXACT_AND_PREFIX)
def test_exact_forms_and_prefixes(rule, title, expected):
    assert matches(rule, title) is expected


PHRASES = [
    ('"North Korea"', "North Korea fires missiles", True),
    ('"North Korea"', "North Korea's army", True),
    ('"North Korea"', "Korea North of the river", False),
    ('"North Korea"', "north and south Korea", False),
    ('"Kim Jong Un"', "Kim Jong-un visits Russia", True),  # hyphens cut words the same way in rules and texts
    ("Kim-Jong-Un", "Kim Jong Un visits", True),  # a hyphenated bare word is a phrase
    ('"drone factory"', "new drone factories", True),  # each word of a phrase takes its forms
    ('"drone factory"', "factory of drones", False),
    ('"long-range drones"', "long range drone", True),
    ('"troops"', "troop", True),
]


@pytest.mark.parametrize("rule,title,expected", PHRASES)
def test_phrases_are_consecutive_words(rule, title, expected):
    assert matches(rule, title) is expected


def test_a_phrase_does_not_run_from_the_title_into_the_body():
    assert not matches('"North Korea"', "Talks with the North", "Korea said no.")


# --- boolean operators ---------------------------------------------------------------------------------------

BOOLEAN = [
    ("drone AND Iran", "Iran drone", True),
    ("drone AND Iran", "Iran missile", False),
    ("drone Iran", "Iran drone", True),  # side by side means AND
    ("drone Iran", "drone", False),
    ("drone OR missile", "a missile", True),
    ("drone OR missile", "a tank", False),
    ("drone NOT Iran", "a drone from Turkey", True),
    ("drone NOT Iran", "a drone from Iran", False),
    ("drone AND NOT Iran", "a drone from Iran", False),
    ("NOT Iran drone", "a drone", True),
    ("drone OR missile Iran", "a drone", True),  # AND binds tighter than OR: drone OR (missile AND Iran)
    ("drone OR missile Iran", "a missile", False),
    ("(drone OR missile) Iran", "a drone", False),
    ("(drone OR missile) Iran", "Iran missile", True),
    ("((drone))", "drone", True),
    ('drone "and"', "drone and tank", True),  # a quoted stop word is a word
    ("troops near border", "troops near the border", True),  # near in lower case is a word
]


@pytest.mark.parametrize("rule,title,expected", BOOLEAN)
def test_and_or_not_and_parentheses(rule, title, expected):
    assert matches(rule, title) is expected


# --- proximity and sentences ---------------------------------------------------------------------------------

NEAR = [
    ("NEAR(drone supply, 2)", "Iran will supply Russia with drones", True),  # 2 words between
    ("NEAR(drone supply, 1)", "Iran will supply Russia with drones", False),
    ("NEAR(supply drone, 3)", "drones that Iran will supply", True),  # either order
    ("NEAR(drone supply)", "supply " + "x " * 10 + "drone", True),  # default: 10 words between
    ("NEAR(drone supply)", "supply " + "x " * 11 + "drone", False),
    ("NEAR(drone supply, 0)", "drone supply chain", True),
    ("NEAR(drone supply, 0)", "drone parts supply", False),
    ("NEAR(drone, supply, 3)", "supply of drones", True),  # commas between terms are fine
    ("NEAR(drone (supply OR export), 2)", "exports of drones", True),
    ('NEAR("North Korea" troops, 2)', "North Korea sent troops", True),
    ("NEAR(@dprk troops, 2)", "North Korea sent troops", True),
    ("NEAR(drone supply Iran, 4)", "Iran to supply drones", True),
    ("NEAR(drone supply Iran, 4)", "Iran agrees. Much later, in a separate matter, they supply drones", False),
    ("NEAR(NEAR(drone supply, 1) Iran, 3)", "Iran to supply drones", True),
    ("drone NEAR/2 supply", "Iran will supply Russia with drones", True),  # the infix form
    ("drone NEAR/1 supply", "Iran will supply Russia with drones", False),
    ("drone NEAR/3 supply NEAR/3 Iran", "Iran will supply drones", True),
]


@pytest.mark.parametrize("rule,title,expected", NEAR)
def test_near_counts_the_words_between(rule, title, expected):
    assert matches(rule, title) is expected


def test_near_does_not_reach_from_the_title_into_the_body():
    assert not matches("NEAR(drone supply, 5)", "Drone", "Supply lines were cut.")
    assert matches("NEAR(drone supply, 5)", "x", "Drone supply lines were cut.")


SENTENCES = [
    ("SENTENCE(drone supply)", "", "Iran will supply drones. Nothing else.", True),
    ("SENTENCE(drone supply)", "", "Iran will supply oil. Drones were seen.", False),
    ("SENTENCE(drone supply)", "", "Iran will supply oil!\nDrones were seen.", False),
    ("SENTENCE(drone supply)", "", "Mr. Smith said Iran will supply drones.", True),  # Mr. does not end it
    ("SENTENCE(drone supply)", "", "The U.S. said Iran will supply drones.", True),  # nor does U.S.
    ("SENTENCE(drone supply)", "", "Iran will supply 1.5 million drones.", True),  # nor a decimal point
    ("SENTENCE(drone supply)", "Drones", "Iran will supply oil.", False),  # the title is a sentence of its own
    ("SENTENCE(drone supply)", "Iran to supply drones", "", True),
    ("SENTENCE(drone (supply OR export) Iran)", "", "Iran exports drones. Russia buys them.", True),
    ("SENTENCE(NEAR(drone supply, 1) Iran)", "", "Iran said it would supply drones.", True),
]


@pytest.mark.parametrize("rule,title,body,expected", SENTENCES)
def test_sentence_keeps_terms_in_one_sentence(rule, title, body, expected):
    assert matches(rule, title, body) is expected


# --- fields ----------------------------------------------------------------------------------------------------

LEAD = " ".join(["word"] * 70)
FIELDS = [
    ("title:drone", "Drone factory", "", True),
    ("title:drone", "Factory", "A drone factory.", False),
    ("body:drone", "Drone factory", "A factory.", False),
    ("body:drone", "Factory", "A drone factory.", True),
    ("title:(drone OR missile) AND Iran", "Missile test", "Iran said.", True),
    ('title:"drone factory"', "New drone factory", "", True),
    ("title:NEAR(drone factory, 1)", "Drone factory", "", True),
    ("lead:drone", "Factory", "A drone. " + LEAD, True),  # lead: the title and the first 60 words
    ("lead:drone", "Factory", LEAD + " A drone.", False),
    ("lead:drone", "Drone", LEAD, True),
    ("NEAR(title:drone Iran, 3)", "Drone deal", "Iran", False),  # NEAR stays in one field
]


@pytest.mark.parametrize("rule,title,body,expected", FIELDS)
def test_fields(rule, title, body, expected):
    assert matches(rule, title, body) is expected


# --- term lists ------------------------------------------------------------------------------------------------

TERM_LISTS = [
    ("@dprk", "Pyongyang fires a missile", True),
    ("@dprk", "Kim Jong-un inspects a factory", True),
    ("@dprk", "South Korea holds drills", False),
    ("@dprk AND @russia", "North Korean troops in Russia", True),
    ("@weapons", "artillery shells", True),  # a list can use another list
    ("title:@weapons", "Missiles", True),
    ("@weapons^2 AND Iran", "Iran drone", True),
]


@pytest.mark.parametrize("rule,title,expected", TERM_LISTS)
def test_term_lists(rule, title, expected):
    assert matches(rule, title) is expected


# --- weights and min_score ------------------------------------------------------------------------------------


def score(rule: str, title: str, body: str = "", min_score: float = 0.0) -> float | None:
    found = match_article([topic(rule, min_score=min_score)], title, body)
    return found[0].score if found else None


SCORES = [
    # rule, title, expected score (None: no match)
    ("drone", "drone drones drone", 1.0),  # a term counts once, however often it occurs
    ("drone AND Iran", "Iran drone", 2.0),
    ("drone^3 AND Iran", "Iran drone", 4.0),
    ("(drone OR missile)^2 AND Iran", "Iran drone missile", 5.0),  # a group's weight applies to each term in it
    ("drone OR missile OR tank", "drone missile", 2.0),  # OR adds up the alternatives found
    ("drone AND strike^-1", "drone strike", 0.0),  # a penalty lowers the score, never blocks the match
    ("drone AND strike^-1", "drone", 1.0),
    ("drone AND NOT strike", "drone", 1.0),  # NOT scores nothing
    ("title:drone^2 AND drone", "Drone", 3.0),
]


@pytest.mark.parametrize("rule,title,expected", SCORES)
def test_scores(rule, title, expected):
    assert score(rule, title) == expected


MIN_SCORES = [
    ("drone OR missile OR tank OR artillery", 2, "a drone", False),
    ("drone OR missile OR tank OR artillery", 2, "a drone and a tank", True),  # "at least two of"
    ("drone AND strike^-2", 1, "drone strike", False),
    ("(drone AND supply) AND strike^-1", 1, "drone supply strike", True),
]


@pytest.mark.parametrize("rule,min_score,title,expected", MIN_SCORES)
def test_min_score(rule, min_score, title, expected):
    assert matches(rule, title, min_score=min_score) is expected


# --- other scripts ---------------------------------------------------------------------------------------------

MULTILINGUAL = [
    # Cyrillic: case, ё/е and inflections fold
    ("Россия", "Новости: россия и КНДР", True),
    ("Россия", "Визит в России", True),
    ("беспилотник", "Поставки беспилотников в Россию", True),
    ("беспилотник", "Новые беспилотниками атаки", True),
    ("КНДР AND Россия", "КНДР направила войска в Россию", True),
    ("NEAR(КНДР войска, 2)", "КНДР направила войска", True),
    ("ёлка", "Елка", True),
    # Korean: particles attach to the word, so Hangul terms match as prefixes
    ("북한군", "북한군이 러시아에 파병됐다", True),
    ("북한군", "북한군을 보냈다", True),
    ("북한", "북한군을 보냈다", True),
    ("=북한", "북한군을 보냈다", False),  # = keeps the bare word only
    ("=북한", "북한 외무성", True),
    ("러시아 AND 파병", "북한군이 러시아에 파병됐다", True),
    ('"러시아 파병"', "북한 러시아 파병 확인", True),
    ("NEAR(북한군 파병, 2)", "북한군이 러시아에 파병", True),
    ("드론", "러시아와 드론 공동 생산", True),
    ("드론", "무인기 생산", False),
    ("@dprk", "북한이 병력을 보냈다", True),
    # Chinese and Japanese have no spaces: a term matches inside a run of characters
    ("北朝鮮", "北朝鮮軍がロシアに派遣", True),
    ("無人機", "北朝鮮軍がロシアに派遣", False),
]


@pytest.mark.parametrize("rule,title,expected", MULTILINGUAL)
def test_cyrillic_korean_and_cjk(rule, title, expected):
    assert matches(rule, title) is expected


@pytest.mark.parametrize(
    "title,body,scripts",
    [
        ("Troops sent", "plain ASCII text", set()),
        ("“Troops” sent", "typographic quotes — and a dash", set()),  # not ASCII, yet none of the three
        ("Troops sent", "a body that says КНДР once", {CYRILLIC}),
        ("북한군 파병", "", {HANGUL}),
        ("Troops", "北朝鮮軍 and 북한", {HANGUL, CJK}),
    ],
)
def test_an_article_knows_its_scripts_wherever_they_are(title, body, scripts):
    art = ArticleText(title, body)
    found = {name for name in (CYRILLIC, HANGUL, CJK) if art.has_script(name)}
    assert found == scripts


@pytest.mark.parametrize(
    "rule,body",
    [
        ("Pyongyang OR КНДР", "Сообщается, что КНДР направила войска"),
        ("Pyongyang OR 북한", "북한군이 러시아에 파병됐다"),
        ("Pyongyang OR 北朝鮮", "北朝鮮軍がロシアに派遣"),
    ],
)
def test_a_term_in_another_script_matches_in_the_body_of_an_english_article(rule, body):
    # An OR looks at such terms only in articles that have the script: the body must count, not just the title.
    assert matches(rule, "Troops sent", body)
    assert not matches(rule, "Troops sent", "Troops were sent, officials said")


# --- errors ----------------------------------------------------------------------------------------------------

BAD_RULES = [
    # rule, message fragment, 0-based position
    ("", "the rule is empty", 0),
    ("drone AND (supply OR export", "expected ) to close the ( opened at column 11", 27),
    ("drone)", "unexpected ): no ( to close", 5),
    ("drone AND", "expected a term after AND", 9),
    ("drone OR", "expected a term after OR", 8),
    ("drone NOT", "expected a term after NOT", 9),
    ("AND drone", "expected a term before AND", 0),
    ("drone and supply", 'write AND in capitals for the operator, or "and" in quotes', 6),
    ("drone or supply", "write OR in capitals", 6),
    ("drone not supply", "write NOT in capitals", 6),
    ('drone "supply', 'expected " to close the phrase opened at column 7', 13),
    ('drone ""', "empty phrase", 6),
    ("drone ()", "empty ( )", 6),
    ("@dprkk AND drone", "unknown term list @dprkk; known: @dprk, @russia, @shells, @weapons", 0),
    ("drone AND @", "expected a term list name after @", 10),
    ("NEAR(drone)", "NEAR( needs at least two terms", 0),
    ("NEAR(drone supply, 900)", "NEAR distance must be a whole number from 0 to 500", 19),
    ("NEAR(drone AND supply)", "AND inside NEAR( )", 11),
    ("NEAR(drone NOT supply)", "NOT inside NEAR( )", 11),
    ("NEAR(drone (supply AND Iran))", "'(supply AND Iran)' has no single place in the text", 11),
    ("NEAR(drone SENTENCE(a b))", "has no single place in the text", 11),
    ("NEAR(drone supply", "expected ) to close the NEAR( opened at column 1", 17),
    ("near(drone supply)", "write NEAR( in capitals", 0),
    ("NEAR(drone supply 5)", "a NEAR distance goes after a comma, as in NEAR(drone supply, 5)", 18),
    ("NEAR(drone supply 15)", 'to find the number itself, put it in quotes: "15"', 18),
    ("FOO(drone supply)", "unknown operator FOO(; known: NEAR(, SENTENCE(", 0),
    ("drone(supply)", "unknown operator drone(", 0),
    ("SENTENCE(drone supply, 3)", "SENTENCE( takes no distance", 23),
    ("drone near/5 supply", "write NEAR/5 in capitals", 6),
    ("drone NEAR supply", "NEAR takes its terms in parentheses right after it", 6),
    ("SENTENCE (drone supply)", "SENTENCE takes its terms in parentheses right after it", 0),
    ("drone NEAR/x supply", "expected a number after NEAR/", 11),
    ("headline:drone", "unknown field headline:; known: title:, body:, lead:", 0),
    ("title:", "expected a term or ( after title:", 6),
    ("drone :x", "expected a field name before :", 6),
    ("dr*ne", "* goes at the end of a word", 2),
    ("de*", "a prefix needs at least 3 letters before *", 0),
    ("=drone*", "= (exact form) and * (prefix) do not go together", 0),
    ("= drone", "expected a word or a phrase right after =", 1),
    ("drone^x", "expected a number after ^", 6),
    ("drone^", "expected a number after ^", 6),
    ("&", "expected a word, found '&'", 0),
    ("NOT drone", "the rule can be true without finding any of its words", 0),
    ("drone^-1", "the rule can be true without finding any of its words", 0),
    ("drone OR supply^-1", "a negative weight (a penalty) goes on a part joined by AND", 9),
    ("NEAR(drone supply^-1)", "a negative weight (a penalty) goes on a part joined by AND", 11),
]


@pytest.mark.parametrize("rule,fragment,position", BAD_RULES)
def test_bad_rules_are_refused_with_a_message_and_a_position(rule, fragment, position):
    with pytest.raises(RuleError) as caught:
        topic(rule, name="drones")
    e = caught.value
    assert fragment in e.message
    assert e.position == position
    assert e.topic == "drones"
    assert e.rule == rule
    assert "topic 'drones'" in str(e) and f"position {position + 1}" in str(e)  # describe() counts from 1


def test_a_quoted_number_in_near_is_a_word_to_find():
    assert matches('NEAR(Shahed "136")', "Russia builds the Shahed 136 drone")
    assert not matches('NEAR(Shahed "136")', "Russia builds the Shahed drone")


def test_an_unclosed_parenthesis_in_a_long_rule_points_at_its_last_line_and_names_the_opening():
    rule = "(@dprk troops AND\n   Kursk\n\n"
    with pytest.raises(RuleError) as caught:
        topic(rule, name="nk_troops")
    text = caught.value.describe(name_topic=False)
    assert text.splitlines() == [
        "expected ) to close the ( opened at line 1, column 1, at the end of the rule (position 27)",
        "       Kursk",
        "            ^",  # just after the last word written, not under the blank line after it
    ]


def test_an_error_inside_a_rule_of_several_lines_gives_line_and_column():
    rule = "drone\nAND (supply\n  OR ^2)"
    with pytest.raises(RuleError) as caught:
        topic(rule)
    first, line, caret = str(caught.value).splitlines()
    assert "at line 3, column 6" in first
    assert line == "      OR ^2)" and caret == "         ^"


TERM_LIST_ERRORS = [
    # terms, rule, message fragment, the text the position is in, position
    ({"a": "drone AND (x"}, "@a", "in term list @a: expected ) to close the ( opened at column 11", "drone AND (x", 12),
    ({"a": "@b", "b": "drone OR @a"}, "@a", "term list @a refers to itself: @a -> @b -> @a", "drone OR @a", 9),
    ({"a": "@a"}, "drone @a", "term list @a refers to itself: @a -> @a", "@a", 0),
    ({"a": "@nope"}, "@a", "in term list @a: unknown term list @nope; known: @a", "@nope", 0),
    ({}, "@x", "unknown term list @x; known: none (define them in [terms])", "@x", 0),
]


@pytest.mark.parametrize("terms,rule,fragment,source,position", TERM_LIST_ERRORS)
def test_errors_inside_term_lists_point_into_the_list(terms, rule, fragment, source, position):
    with pytest.raises(RuleError) as caught:
        topic(rule, terms=terms)
    assert fragment in caught.value.message
    assert caught.value.rule == source
    assert caught.value.position == position


def test_compile_topics_raises_the_first_error_and_shares_term_lists():
    good = TopicConfig("good", "@dprk AND drone")
    bad = TopicConfig("bad", "drone AND")
    assert [t.name for t in compile_topics([good, good], TERMS)] == ["good", "good"]
    with pytest.raises(RuleError) as caught:
        compile_topics([good, bad, TopicConfig("worse", "(")], TERMS)
    assert caught.value.topic == "bad"


def test_a_config_lists_every_bad_rule():
    from watcher.errors import ConfigError

    data = {"topics": {"one": {"rule": "drone AND"}, "two": {"rule": "@nope"}, "three": {"rule": "drone"}}}
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    text = str(caught.value)
    assert "topics.one.rule" in text and "topics.two.rule" in text and "topics.three" not in text


# --- matches and explanations ---------------------------------------------------------------------------------


def test_match_article_gives_one_match_per_matching_topic_with_terms_and_a_marked_snippet():
    topics = [
        topic("NEAR(@dprk troops, 3) AND @russia", name="troops"),
        topic("drone AND factory", name="drones"),
        topic("NEAR(tank supply, 2)", name="tanks"),
    ]
    title = "North Korean troops arrive in Russia"
    body = (
        "Officials in Seoul said on Friday that about 3,000 soldiers had landed near Vladivostok. "
        "North Korea sent the troops after a treaty with Moscow, and more may follow, they said."
    )
    found = match_article(topics, title, body)
    assert [m.topic for m in found] == ["troops"]
    m = found[0]
    assert isinstance(m, Match)
    assert m.score == 5.0  # North Korean, North Korea, troops, Russia, Moscow: each distinct term once
    assert m.terms[:3] == ("North Korean", "troops", "Russia")
    assert "Moscow" in m.terms and "North Korea" in m.terms
    assert "[[North Korea]] sent the [[troops]]" in m.snippet
    assert "[[Moscow]]" in m.snippet
    assert len(m.snippet) <= 320


def test_snippet_is_cut_at_words_around_the_best_window():
    filler = "Filler sentence about the weather and the markets. " * 12
    body = filler + "Iran will supply drones to Russia. " + "More filler text here. " * 12
    m = match_article([topic("NEAR(drone supply, 3)")], "Weekly roundup", body)[0]
    assert m.snippet.startswith("…") and m.snippet.endswith("…")
    assert "Iran will [[supply]] [[drones]] to Russia." in m.snippet
    assert 150 <= len(m.snippet) <= 320
    assert " ".join(m.snippet.split()) == m.snippet  # whitespace collapsed


def test_a_line_break_in_the_text_stays_visible_in_the_snippet():
    body = "Drone Parts Came From Europe, Investigators Say\nWhen Western researchers took the drone apart..."
    m = match_article([topic("drone AND researchers")], "Weekly roundup", body)[0]
    assert "Investigators Say · When Western [[researchers]]" in m.snippet


def test_snippet_marks_a_phrase_once_and_the_title_when_only_the_title_matches():
    m = match_article([topic('title:"drone factory"')], "A new drone factory opens", "Nothing about it here.")[0]
    assert m.snippet == "A new [[drone factory]] opens"
    assert m.terms == ("drone factory",)


def test_penalties_are_not_reported_as_terms():
    m = match_article([topic("drone AND supply AND strike^-1", min_score=0)], "Drone supply after strike", "")[0]
    assert m.terms == ("Drone", "supply")
    assert m.score == 1.0


def test_explain_reports_each_clause_and_why_it_failed():
    t = topic("NEAR(@dprk troops, 3) AND @russia AND NOT exercise", name="troops")
    e = explain(t, "North Korean troops arrive", "They took part in an exercise.")
    assert not e.matched and e.reason == "the rule is not satisfied"
    by_text = {c.text: c for c in e.clauses}
    assert by_text["NEAR(@dprk troops, 3)"].matched
    assert by_text["NEAR(@dprk troops, 3)"].terms == ("North Korean", "troops")
    assert by_text["@dprk"].depth == 2
    assert not by_text["@russia"].matched
    assert not by_text["NOT exercise"].matched
    assert by_text["exercise"].matched  # the word is there, which is why NOT fails
    assert e.clauses[0].depth == 0 and not e.clauses[0].matched
    text = e.render()
    assert "troops: no match" in text and "✗ @russia" in text and "✓ NEAR(@dprk troops, 3)" in text


def test_explain_says_when_the_score_is_too_low():
    t = topic("drone OR missile OR tank", min_score=2)
    e = explain(t, "A drone", "")
    assert not e.matched and e.score == 1.0 and "below min_score 2" in e.reason
    assert e.terms == ("drone",) and e.snippet == "A [[drone]]"
    e = explain(t, "A drone and a tank", "")
    assert e.matched and e.reason == "matched" and e.score == 2.0


def test_explain_shows_fields_and_term_lists_as_one_line():
    e = explain(topic("title:@dprk AND body:(drone OR missile)"), "Pyongyang test", "A missile flew.")
    assert e.matched
    assert [(c.depth, c.text, c.matched) for c in e.clauses] == [
        (0, "title:@dprk AND body:(drone OR missile)", True),
        (1, "title:@dprk", True),
        (1, "body:(drone OR missile)", True),
        (2, "drone", False),
        (2, "missile", True),
    ]


def test_matching_is_pure_and_repeatable():
    topics = [topic("drone AND @russia", name="a"), topic("NEAR(drone supply, 2)", name="b")]
    first = match_article(topics, "Russia to supply drones", "")
    assert first == match_article(topics, "Russia to supply drones", "")
    assert [m.topic for m in first] == ["a", "b"]
    assert match_article([], "Russia to supply drones", "") == ()
    assert match_article(topics, "", "") == ()


def test_a_compiled_topic_survives_pickling():
    # nodes are interned per process, so a topic sent to another process is compiled there again
    import pickle

    t = pickle.loads(pickle.dumps(topic("NEAR(@dprk troops, 3)", name="nk")))
    assert t.name == "nk"
    assert [m.topic for m in match_article([t], "North Korean troops", "")] == ["nk"]


def test_topics_that_share_a_term_list_get_their_own_matches():
    # the same @list in two topics is compiled to shared nodes; each topic still reports its own terms
    a = topic("@weapons AND Iran", name="a")
    b = topic("@weapons AND Russia", name="b")
    found = match_article([a, b], "Iran and Russia trade artillery shells", "")
    assert [(m.topic, m.terms) for m in found] == [
        ("a", ("Iran", "artillery", "shells")),
        ("b", ("Russia", "artillery", "shells")),
    ]


# --- the default rules ----------------------------------------------------------------------------------------

DEFAULTS = Path(__file__).resolve().parent.parent / "watcher" / "default_config.toml"


@pytest.fixture(scope="module")
def defaults():
    with open(DEFAULTS, "rb") as f:
        config = config_from_dict(tomllib.load(f), str(DEFAULTS))
    return compile_topics(config.topics, config.terms)


DEFAULT_CASES = [
    # title, body, topics expected
    ("Iran is helping Russia build a drone factory", "", {"drone_cooperation"}),
    ("Saudi Arabia agrees a deal to buy Turkish drones", "", {"drone_cooperation"}),
    ("UK provides Ukraine with long-range attack drones", "", {"drone_cooperation"}),
    ("North Korea and Russia to develop drones jointly under their treaty", "", {"drone_cooperation"}),
    ("Prosecutors charge two men with exporting drone components to Iran", "", {"drone_cooperation"}),
    ("Russia launches a wave of drone attacks on Kyiv", "Air defences shot down most of the drones.", set()),
    ("Ukraine unveils a home-grown attack drone", "The drone was designed and built in Ukraine.", set()),
    ("Drone footage shows flooding in the valley", "", set()),
    ("US sends 2,000 more troops to the Middle East", "", {"troop_deployment"}),
    ("French troops leave Niger after the coup", "", {"troop_deployment"}),
    ("NATO to deploy extra troops to Kosovo", "", {"troop_deployment"}),
    ("North Korean troops return to the front lines", "", {"troop_deployment"}),
    ("Kim praises North Korean soldiers in Russia's Kursk region", "", {"troop_deployment"}),
    ("북한군, 러시아 파병 확인", "북한이 러시아에 병력을 파병했다고 밝혔다.", {"troop_deployment"}),
    ("Ukrainian troops advance near Bakhmut", "Fighting continued through the night.", set()),
    ("Three soldiers killed as troops withdraw from the village", "", set()),
    ("Army holds annual parade", "Soldiers marched through the capital.", set()),
    # Vocabulary of the rewrite (docs/rules.md): forms of dispatch, personnel; and what only looks like a deployment.
    ("North Korea decides to dispatch 12,000 soldiers to Russia", "", {"troop_deployment"}),
    ("100 more U.S. military personnel arrive in Poland", "", {"troop_deployment"}),
    ("Striker sent on loan as club reinforces for the football season", "Troops of fans cheered.", set()),
    ("Prisoner exchange: 90 soldiers return home", "", set()),
    ("Rehabilitation centre opens for troops returning from the front", "", set()),
    ("Reporter's dispatches from the front: troops hold the line", "", set()),
    ("Carrier strike group sails near Taiwan during drills", "", set()),
    ("Teacher sold the school's drones to a buyer abroad", "He sold drones to a buyer.", set()),
    (
        "Iran plans a drone plant in Russia",
        "Iran will help Russia build a drone plant near Kazan.",
        {"drone_cooperation"},
    ),
    # Second rewrite: supply told with "ships" (in that order), arms aid that lists drones, gathering troops,
    # warships; Korean one-syllable 군 only as a bare word, 기술 only as a transfer, farming drones are civilian.
    ("Tehran ships drones to Moscow across the sea, officials say", "", {"drone_cooperation"}),
    ("Navy tests new drone ships off the coast", "", set()),
    (
        "Senate approves a new military aid package for Kyiv",
        "The package includes air defence missiles and attack drones.",
        {"drone_cooperation"},
    ),
    ("Troops gather near the border as tensions rise", "", {"troop_deployment"}),
    ("Two more destroyers sent to the eastern Mediterranean", "", {"troop_deployment"}),
    ("The move gives the soldiers a rest", "", set()),
    ("주한미군 일부 병력 중동으로 이동 배치", "", {"troop_deployment"}),
    (
        "군청, 드론 방제 사업 주민설명회 개최",
        "군은 사업비를 투입해 드론 방제기를 도입하고 농가의 부담을 줄일 계획이다.",
        set(),
    ),
    ("지역 기업, 드론 기술 개발 나서", "국내 기업이 드론 기술 개발에 투자했다.", set()),
    # Troops and a movement in the lead count when the headline names troops, a movement, North Korea or a presence.
    (
        "Talks stall over the ceasefire",
        "The president will not talk unless the invading troops leave his country.",
        set(),
    ),
    (
        "France recalls its ambassador",
        "Paris agreed to withdraw its 400 troops stationed in the country.",
        {"troop_deployment"},
    ),
    ("독일 정가, 우크라이나 철군 논의", "", {"troop_deployment"}),
    ("러시아, 이란 도움으로 샤헤드 생산 공장 가동", "", {"drone_cooperation"}),
]


@pytest.mark.parametrize("form", ["dispatch", "dispatches", "dispatched", "dispatching"])
def test_every_form_of_dispatch_has_one_stem(form):
    from watcher.rules.text import stem

    assert stem(form) == "dispatch"


@pytest.mark.parametrize("title,body,expected", DEFAULT_CASES)
def test_default_rules_compile_and_match_sentences(defaults, title, body, expected):
    assert {m.topic for m in match_article(defaults, title, body)} == expected


def test_default_rules_have_descriptions(defaults):
    assert {t.name for t in defaults} == {"drone_cooperation", "troop_deployment"}
    assert all(t.description for t in defaults)
