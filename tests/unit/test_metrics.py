"""The pure parts of issue 18: how a Decision is counted, the overview's buckets and SVG, and
the generated Prometheus configuration."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from callguard import metrics
from callguard import overview as ov
from callguard.config import Settings
from callguard.domain.routing import Connect, NuisanceMenu, RecordPlan, Refuse, Reject
from callguard.prometheus_conf import render

NOW = datetime(2026, 12, 2, 3, 30, tzinfo=UTC)  # 12:30 JST
PLAN = RecordPlan("F1", "0312345679", "in", "0399990001", "2026/12/02/F1/x.wav")


@pytest.mark.parametrize(("decision", "expected"), [
    (Connect("PJSIP/f1-b", 30), ("connected", "")),
    (Connect("PJSIP/f1-b", 30, record=PLAN), ("recorded", "")),
    (Reject(1), ("rejected", "")),
    (Refuse(34, "congestion"), ("refused", "congestion")),
    (Refuse(1), ("refused", "cause_1")),
    (NuisanceMenu("0312345679", 1), ("menu144", "")),
])
def test_outcome_of_each_decision(decision: object, expected: tuple[str, str]) -> None:
    assert metrics.outcome_of(decision) == expected  # type: ignore[arg-type]


def test_outcome_row_holds_no_number() -> None:
    op = metrics.outcome_op("in", Connect("PJSIP/f1-b", 30, record=PLAN), metrics.VIA_FALLBACK,
                            7, NOW)
    assert op.name == "call_outcome"
    assert op.args == {"at": NOW, "contract_id": 7, "direction": "in", "outcome": "recorded",
                       "refuse_class": "", "via": "fallback"}


def _sample(name: str, **labels: str) -> float:
    text = generate_latest(metrics.REGISTRY).decode()
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    braces = f"{{{inner}}}" if inner else ""
    m = re.search(rf"^{re.escape(name + braces)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_menu144_counted_by_key_and_outcome() -> None:
    before = _sample("callguard_menu144_operations_total", key="2", outcome="cancelled")
    metrics.menu144_done("register", ["register_cancelled"])
    assert _sample("callguard_menu144_operations_total", key="2",
                   outcome="cancelled") == before + 1
    before = _sample("callguard_menu144_operations_total", key="4", outcome="read")
    metrics.menu144_done("read_counts", ["count_this_month", "d3"])
    assert _sample("callguard_menu144_operations_total", key="4", outcome="read") == before + 1


def test_menu144_nobody_to_register_is_not_a_storage_failure() -> None:
    """A last caller without a number hears 「…登録に失敗しました。」 (source 004), as a storage
    failure does; the metric still tells the two apart."""
    before = _sample("callguard_menu144_operations_total", key="2", outcome="cannot_identify")
    failed = _sample("callguard_menu144_operations_total", key="2", outcome="failed")
    metrics.menu144_done("register", ["register_failed"], nobody_to_register=True)
    assert _sample("callguard_menu144_operations_total", key="2",
                   outcome="cannot_identify") == before + 1
    assert _sample("callguard_menu144_operations_total", key="2", outcome="failed") == failed


@pytest.mark.parametrize(("action", "key"), [("delete_newest", "3"), ("delete_all", "9"),
                                             ("read_counts", "4")])
def test_menu144_storage_failure_of_3_9_4_is_failed(action: str, key: str) -> None:
    """Their failure guidance is 「ただいま、大変混み合って…」 (nuisance.failure_prompt)."""
    before = _sample("callguard_menu144_operations_total", key=key, outcome="failed")
    metrics.menu144_done(action, ["congestion"])
    assert _sample("callguard_menu144_operations_total", key=key,
                   outcome="failed") == before + 1


def test_fallback_decision_counts_a_fallback_call() -> None:
    before = _sample("callguard_fallback_calls_total")
    metrics.call_decided(metrics.VIA_FALLBACK, "out", Refuse(21, "rec_wrong_prefix"))
    assert _sample("callguard_fallback_calls_total") == before + 1
    assert _sample("callguard_calls_total", decision="refused", direction="out",
                   refuse_class="rec_wrong_prefix", via="fallback") >= 1


def test_buckets_are_tokyo_hours_and_days() -> None:
    hours = ov.hour_buckets(NOW)
    assert len(hours) == 24 and hours[-1] == datetime(2026, 12, 2, 12) \
        and hours[0] == datetime(2026, 12, 1, 13)
    days = ov.day_buckets(NOW)
    assert len(days) == 14 and days[-1] == datetime(2026, 12, 2) \
        and days[0] == datetime(2026, 11, 19)


def test_chart_draws_every_count_and_nothing_else() -> None:
    hours = ov.hour_buckets(NOW)
    chart = ov.fill(hours, ov.OUTCOME_SERIES, [
        (hours[-1], "connected", 3), (hours[-1], "rejected", 2), (hours[0], "recorded", 1),
        (datetime(2020, 1, 1), "connected", 99), (hours[-1], "unknown", 5)])
    assert chart.total("connected") == 3 and chart.total("rejected") == 2
    svg = ov.bar_chart("c", chart, ov.OUTCOME_SERIES, 3, "%H:00", True, "t")
    bars = re.findall(r'data-series="(\w+)" data-bucket="([^"]+)" data-value="(\d+)"', svg)
    assert len(bars) == 24 * len(ov.OUTCOME_SERIES)
    drawn = {(s, b): int(v) for s, b, v in bars if v != "0"}
    assert drawn == {("connected", "2026-12-02T12:00:00"): 3,
                     ("rejected", "2026-12-02T12:00:00"): 2,
                     ("recorded", "2026-12-01T13:00:00"): 1}
    assert 'data-ymax="5"' in svg  # stacked: 3 + 2
    assert "<script" not in svg and "style=" not in svg  # strict CSP: nothing inline
    table = ov.data_table("t", chart, ov.OUTCOME_SERIES, "%H:00")
    assert '<tfoot><tr><th scope="row">合計</th><td data-series="connected">3</td>' in table
    # Issue #15: the page's language throughout (legend, bar titles, table), Japanese first.
    assert ">接続</text>" in svg and "<title>12:00 接続: 3</title>" in svg
    english = ov.bar_chart("c", chart, ov.OUTCOME_SERIES, 3, "%H:00", True, "t", "en")
    assert ">connected</text>" in english and "<title>12:00 connected: 3</title>" in english
    table = ov.data_table("t", chart, ov.OUTCOME_SERIES, "%H:00", "en", ("Time", "Total"))
    assert '<th scope="col">Time</th><th scope="col">connected</th>' in table


def test_nice_axis_top() -> None:
    assert [ov._nice_max(v) for v in (0, 1, 3, 7, 11, 50, 51)] == [1, 1, 5, 10, 20, 50, 100]


def test_prometheus_config_scrapes_every_part_on_loopback() -> None:
    settings = Settings(
        database_url="postgresql://x", ari_url="http://127.0.0.1:8088", ari_user="u",
        ari_password="p", ari_app="callguard", hmac_key=b"k", api_token="t",
        recordings_dir=Path("/tmp"), recordings_asterisk_dir="/r", asterisk_root="",
        log_dir=Path("/tmp"), fastagi_host="127.0.0.1", fastagi_port=4573,
        api_host="127.0.0.1", api_port=8089, max_recordings=400,
        at_capacity_policy="congestion", ring_timeout_s=30)
    config = json.loads(render(replace(settings, metrics_ari_port=19461), "/x/rules.yml"))
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"] == ["/x/rules.yml"]
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0]
               for j in config["scrape_configs"]}
    assert targets == {"ari": "127.0.0.1:19461", "fastagi": "127.0.0.1:9462",
                       "api": "127.0.0.1:9463", "asterisk": "127.0.0.1:8088",
                       "prometheus": "127.0.0.1:9460"}
    # Asterisk's per-channel and per-bridge series (a new id each call) are dropped at the
    # scrape, its counts kept; no other job loses a series.
    relabel = {j["job_name"]: j["metric_relabel_configs"] for j in config["scrape_configs"]}
    drop = relabel["asterisk"][0]
    assert drop["action"] == "drop" and drop["source_labels"] == ["__name__"]
    pattern = re.compile(f"^(?:{drop['regex']})$")
    assert pattern.match("asterisk_channels_state")
    assert pattern.match("asterisk_channels_duration_seconds")
    assert pattern.match("asterisk_bridges_channels_count")
    assert not pattern.match("asterisk_channels_count")
    assert not pattern.match("asterisk_bridges_count")
    assert all(r["action"] == "labeldrop" for job, rs in relabel.items() if job != "asterisk"
               for r in rs)


def test_prometheus_config_of_a_cluster_labels_every_node() -> None:
    """Issue 18 in cluster mode (issue 12): each node's four parts are scraped at that node's
    ports with a node label, and Kamailio's xhttp_prom /metrics is a job of its own."""
    base = Settings(
        database_url="postgresql://x", ari_url="http://127.0.0.1:8088", ari_user="u",
        ari_password="p", ari_app="callguard", hmac_key=b"k", api_token="t",
        recordings_dir=Path("/tmp"), recordings_asterisk_dir="/r", asterisk_root="",
        log_dir=Path("/tmp"), fastagi_host="127.0.0.1", fastagi_port=4573,
        api_host="127.0.0.1", api_port=8089, max_recordings=400,
        at_capacity_policy="congestion", ring_timeout_s=30)
    nodes = {f"n{n}": replace(base, ari_url=f"http://127.0.0.1:{8100 + n}",
                              metrics_ari_port=9470 + n, metrics_fastagi_port=9480 + n,
                              metrics_api_port=9490 + n) for n in (1, 2)}
    config = json.loads(render(base, "/x/rules.yml", nodes=nodes, kamailio="127.0.0.1:9464"))
    jobs = {j["job_name"]: [(g["targets"][0], g.get("labels", {}))
                            for g in j["static_configs"]] for j in config["scrape_configs"]}
    assert jobs["ari"] == [("127.0.0.1:9471", {"node": "n1"}), ("127.0.0.1:9472", {"node": "n2"})]
    assert jobs["fastagi"] == [("127.0.0.1:9481", {"node": "n1"}),
                               ("127.0.0.1:9482", {"node": "n2"})]
    assert jobs["api"] == [("127.0.0.1:9491", {"node": "n1"}), ("127.0.0.1:9492", {"node": "n2"})]
    assert jobs["asterisk"] == [("127.0.0.1:8101", {"node": "n1"}),
                                ("127.0.0.1:8102", {"node": "n2"})]
    assert jobs["kamailio"] == [("127.0.0.1:9464", {})]
    assert jobs["prometheus"] == [("127.0.0.1:9460", {})]


def test_shed_call_counted_as_shed_by_the_app() -> None:
    """REL-1 load shedding: the app counts the call it hands on; the fallback then counts its
    own decision (via="fallback"), so a shed call is never a decision of the app."""
    before = _sample("callguard_calls_total", decision="shed", direction="in",
                     refuse_class="", via="ari")
    metrics.call_shed("in")
    assert _sample("callguard_calls_total", decision="shed", direction="in", refuse_class="",
                   via="ari") == before + 1


def test_dead_call_causes() -> None:
    """REL-8 / issue 18: Asterisk's RTP timeout (cause 44) is a reaped call whatever the
    state; a SIP 408 (cause 18) only on an answered call (a session-timer refresh nobody
    answered); a normal end or a busy callee never."""
    assert metrics.reaped(44, answered=True) and metrics.reaped("44", answered=False)
    assert metrics.reaped("18", answered=True)
    assert not metrics.reaped(18, answered=False)
    assert not metrics.reaped(16, answered=True) and not metrics.reaped("17", answered=True)
    assert not metrics.reaped("", answered=True) and not metrics.reaped(None, answered=True)
    before = _sample("callguard_dead_calls_reaped_total")
    assert metrics.call_released(44, answered=True)
    assert not metrics.call_released(16, answered=True)
    assert _sample("callguard_dead_calls_reaped_total") == before + 1
