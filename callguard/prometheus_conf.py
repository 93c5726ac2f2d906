"""The Prometheus server's configuration, generated from Settings (issue 18).

`python -m callguard.prometheus_conf RULES` prints it (JSON, which is YAML): every part of the
stack scraped on loopback every second (the ports come from callguard.config.Settings), the
alert rules of tools/prometheus/rules.yml. tools/stack.sh writes it to .run/prometheus/.

In cluster mode (issue 12) `python -m callguard.prometheus_conf RULES --kamailio HOST:PORT
NODE=ENV_FILE ...` (tools/cluster.sh) scrapes each node's ARI app, fallback, API and Asterisk,
every target labelled with its node, and Kamailio's xhttp_prom /metrics (dispatcher state).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from callguard.config import Settings, load_settings

# Labels a scraped series must never carry (res_prometheus knows channels; numbers stay out).
DROPPED_LABELS = "callerid.*|connected.*|dnid|caller.*|exten"
# res_prometheus's series of each channel and each bridge, labelled by its unique id: every
# call made new series (116,000 in Prometheus's head after half an hour of bench steps),
# indexed on the stack's core. The counts (asterisk_channels_count, asterisk_bridges_count,
# calls, endpoints) are kept; a call's own story is in the database and the logs.
PER_CALL_SERIES = "asterisk_channels_state|asterisk_channels_duration_seconds" \
    "|asterisk_bridges_channels_count"
# The parts of one node: job name → its /metrics address in that node's Settings.
PARTS = ("ari", "fastagi", "api", "asterisk")


def _targets(settings: Settings) -> dict[str, str]:
    ari = urlsplit(settings.ari_url)
    return {"ari": f"127.0.0.1:{settings.metrics_ari_port}",
            "fastagi": f"127.0.0.1:{settings.metrics_fastagi_port}",
            "api": f"127.0.0.1:{settings.metrics_api_port}",
            "asterisk": f"{ari.hostname}:{ari.port or 8088}"}


def _job(name: str, groups: list[dict[str, object]]) -> dict[str, object]:
    relabel: list[dict[str, object]] = [{"action": "labeldrop", "regex": DROPPED_LABELS}]
    if name == "asterisk":
        relabel.insert(0, {"action": "drop", "source_labels": ["__name__"],
                           "regex": PER_CALL_SERIES})
    return {"job_name": name, "metrics_path": "/metrics", "static_configs": groups,
            "metric_relabel_configs": relabel}


def render(settings: Settings, rules: str, interval_s: int = 1,
           nodes: dict[str, Settings] | None = None, kamailio: str | None = None) -> str:
    """The configuration for one node (`nodes` None: `settings`' own parts, no node label) or
    for a cluster (`nodes`: name → that node's Settings; `kamailio`: its metrics address)."""
    if nodes is None:
        jobs = [_job(part, [{"targets": [target]}])
                for part, target in _targets(settings).items()]
    else:
        per_node = {name: _targets(s) for name, s in nodes.items()}
        jobs = [_job(part, [{"targets": [per_node[name][part]], "labels": {"node": name}}
                            for name in nodes])
                for part in PARTS]
    if kamailio is not None:
        jobs.append(_job("kamailio", [{"targets": [kamailio]}]))
    jobs.append(_job("prometheus", [{"targets": [f"127.0.0.1:{settings.prometheus_port}"]}]))
    config = {
        "global": {"scrape_interval": f"{interval_s}s", "scrape_timeout": f"{interval_s}s",
                   "evaluation_interval": f"{interval_s}s"},
        "rule_files": [rules],
        "scrape_configs": jobs,
    }
    return json.dumps(config, indent=2) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    if args and args[0] == "--port":
        print(settings.prometheus_port)
        return
    rules = args[0] if args else "rules.yml"
    kamailio: str | None = None
    nodes: dict[str, Settings] = {}
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--kamailio" and rest:
            kamailio = rest.pop(0)
        elif "=" in arg:
            name, _, env_file = arg.partition("=")
            nodes[name] = load_settings(Path(env_file))
        else:
            raise SystemExit(f"unexpected argument {arg!r} (NODE=ENV_FILE or --kamailio HOST:PORT)")
    sys.stdout.write(render(settings, rules, nodes=nodes or None, kamailio=kamailio))


if __name__ == "__main__":
    main()
