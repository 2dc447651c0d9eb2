"""Hostile text and hostile rules: matching and compiling cost bounded time and memory, with errors that name limits.

The bounds are measured in a child process under rlimits (address space and CPU seconds), so that a regression
fails with a MemoryError or a CPU-limit kill instead of taking the machine's memory (the old code took 4.3 GB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from watcher.errors import RuleError
from watcher.rules import TopicConfig, compile_topic, compile_topics, match_article
from watcher.rules.parse import MAX_DEPTH
from watcher.rules.topics import MAX_RULE_DEPTH, MAX_RULE_PARTS

NESTED_NEAR = "NEAR(NEAR(NEAR(NEAR(drone factory, 5) Russia, 10) Korea, 10) troops, 10)"
REPEATED = "drone factory Russia Korea troops. " * 1200  # 42 KB, the item of the hostile run


def doubling_chain(levels: int = 22) -> dict[str, str]:
    """a1 = (@a0 x1) OR (@a0 y1), a2 = (@a1 x2) OR (@a1 y2), ...: each list uses the previous one twice."""
    terms = {"a0": "drone OR factory"}
    for i in range(1, levels + 1):
        terms[f"a{i}"] = f"(@a{i - 1} x{i}) OR (@a{i - 1} y{i})"
    return terms


def run_bounded(code: str, *, memory_mb: int = 1024, cpu_s: int = 60) -> dict:
    """Run `code` (which prints one JSON line) in a child process that cannot use more than the limits."""
    prelude = textwrap.dedent(
        f"""
        import json, resource, time, tracemalloc
        resource.setrlimit(resource.RLIMIT_AS, ({memory_mb} * 2**20, {memory_mb} * 2**20))
        resource.setrlimit(resource.RLIMIT_CPU, ({cpu_s}, {cpu_s}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=cpu_s * 3
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nested_near_on_a_repeated_item_costs_bounded_time_and_memory():
    result = run_bounded(
        f"""
        from watcher.rules import TopicConfig, compile_topic, match_article
        topic = compile_topic(TopicConfig("t", {NESTED_NEAR!r}), {{}})
        deeper = compile_topic(TopicConfig("d", "NEAR(" + {NESTED_NEAR!r} + " war, 10)"), {{}})
        tracemalloc.start()
        started = time.process_time()
        matches = match_article([topic, deeper], "Drone factory", {REPEATED!r} + " war")
        print(json.dumps({{
            "cpu_s": time.process_time() - started,
            "peak_mb": tracemalloc.get_traced_memory()[1] / 2**20,
            "terms": [list(m.terms) for m in matches],
            "snippet": len(matches[0].snippet),
        }}))
        """
    )
    # The old code joined every inner hit per window: 42 s and 4.3 GB for the first rule, killed at 24 GB for the
    # second. Now each window holds a few spans: well under a second and a few MB (generous bounds here).
    assert result["peak_mb"] < 100 and result["cpu_s"] < 30
    assert result["terms"][0] == ["drone", "factory", "Russia", "Korea", "troops"]  # one of each term still shown
    assert result["terms"][1][-1] == "war" and result["snippet"] < 400


def test_a_plain_word_repeated_fifty_thousand_times_is_matched_in_linear_time():
    result = run_bounded(
        """
        from watcher.rules import TopicConfig, compile_topic, match_article
        topic = compile_topic(TopicConfig("t", "drone"), {})
        started = time.process_time()
        (match,) = match_article([topic], "t", "drone " * 50_000)
        print(json.dumps({"cpu_s": time.process_time() - started, "snippet": match.snippet}))
        """
    )
    # The snippet compared every hit with every other: 18 s for 5,000 words, hours for 50,000.
    assert result["cpu_s"] < 30 and result["snippet"].startswith("[[drone]]")


def test_a_chain_of_lists_that_each_use_the_previous_twice_compiles_and_matches_in_linear_time():
    result = run_bounded(
        f"""
        from watcher.rules import TopicConfig, compile_topic, match_article, explain
        started = time.process_time()
        topic = compile_topic(TopicConfig("t", "@a22"), {doubling_chain()!r})
        compiled = time.process_time() - started
        body = " ".join(f"x{{i}} y{{i}}" for i in range(1, 23)) + " drone factory"
        (match,) = match_article([topic], "title", body)
        explained = explain(topic, "title", body)
        print(json.dumps({{"compile_s": compiled, "cpu_s": time.process_time() - started,
                          "score": match.score, "matched": explained.matched}}))
        """,
        cpu_s=30,
    )
    # 2^22 expansions before the lists were memoised: minutes of `watcher check`.
    assert result["cpu_s"] < 10 and result["score"] == 46 and result["matched"]


@pytest.mark.parametrize(
    "rule, limit",
    [
        ("(" * 200 + "drone" + ")" * 200, f"more than {MAX_DEPTH} levels"),
        ("NOT " * 5000 + "drone", f"more than {MAX_DEPTH} levels"),
        ("title:(" * 100 + "drone" + ")" * 100, f"more than {MAX_DEPTH} levels"),
        ("NEAR(" * 100 + "drone troops" + ")" * 100, f"more than {MAX_DEPTH} levels"),
    ],
)
def test_deep_rules_are_refused_with_an_error_that_names_the_limit(rule, limit):
    with pytest.raises(RuleError) as caught:
        compile_topic(TopicConfig("deep", rule), {})
    assert limit in str(caught.value) and "nests too deep" in str(caught.value)


def test_lists_nested_past_the_depth_limit_are_refused_without_a_recursion_error():
    terms = {"l0": "drone"} | {f"l{i}": f"(@l{i - 1} x{i})" for i in range(1, 200)}
    with pytest.raises(RuleError) as caught:
        compile_topic(TopicConfig("deep", "@l199"), terms)
    assert f"more than {MAX_RULE_DEPTH} levels" in str(caught.value) and "MAX_RULE_DEPTH" in str(caught.value)


def test_a_rule_too_large_once_its_lists_are_expanded_is_refused_with_the_limit():
    # A list is compiled once per weight it is used with (weights multiply its terms'): 1,900 words x 11 weights.
    terms = {"words": " OR ".join(f"w{i}" for i in range(1900))}
    rule = " OR ".join(f"@words^{1 + i / 10:g}" for i in range(11))
    with pytest.raises(RuleError) as caught:
        compile_topics([TopicConfig("huge", rule)], terms)
    assert f"more than {MAX_RULE_PARTS} parts" in str(caught.value) and "MAX_RULE_PARTS" in str(caught.value)
    compile_topics([TopicConfig("fine", rule.rpartition(" OR ")[0])], terms)  # 10 weights: within the limit


def test_hits_stay_bounded_and_keep_one_of_each_term_for_the_score():
    topic = compile_topic(TopicConfig("t", "drone AND (troops OR rare^3)"), {})
    (match,) = match_article([topic], "t", "drone troops " * 5000 + "rare")
    assert match.score == 5  # drone 1 + troops 1 + rare 3: the one late hit of `rare` still counts
    assert match.terms == ("drone", "troops", "rare")
