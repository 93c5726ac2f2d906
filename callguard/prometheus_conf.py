"""The Prometheus server's configuration, generated from Settings (issue 18).

`python -m callguard.prometheus_conf RULES` prints it (JSON, which is YAML): every part of the
stack scraped on loopback every second (the ports come from callguard.config.Settings), the
alert rules of tools/prometheus/rules.yml. tools/stack.sh writes it to .run/prometheus.yml.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import urlsplit

from callguard.config import Settings, load_settings

# Labels a scraped series must never carry (res_prometheus knows channels; numbers stay out).
DROPPED_LABELS = "callerid.*|connected.*|dnid|caller.*|exten"


def render(settings: Settings, rules: str, interval_s: int = 1) -> str:
    ari = urlsplit(settings.ari_url)

    def job(name: str, target: str, path: str = "/metrics") -> dict[str, object]:
        return {"job_name": name, "metrics_path": path,
                "static_configs": [{"targets": [target]}],
                "metric_relabel_configs": [{"action": "labeldrop", "regex": DROPPED_LABELS}]}

    config = {
        "global": {"scrape_interval": f"{interval_s}s", "scrape_timeout": f"{interval_s}s",
                   "evaluation_interval": f"{interval_s}s"},
        "rule_files": [rules],
        "scrape_configs": [
            job("ari", f"127.0.0.1:{settings.metrics_ari_port}"),
            job("fastagi", f"127.0.0.1:{settings.metrics_fastagi_port}"),
            job("api", f"127.0.0.1:{settings.metrics_api_port}"),
            job("asterisk", f"{ari.hostname}:{ari.port or 8088}"),
            job("prometheus", f"127.0.0.1:{settings.prometheus_port}"),
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    if args and args[0] == "--port":
        print(settings.prometheus_port)
        return
    sys.stdout.write(render(settings, args[0] if args else "rules.yml"))


if __name__ == "__main__":
    main()
