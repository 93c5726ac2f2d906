"""`callguard cluster list|drain|undrain`: the nodes behind Kamailio (issue 12, CLU-2).

`drain NODE` takes the node out of Kamailio's dispatcher (no new calls: state disabled, which
the OPTIONS probes do not undo), waits until its Asterisk has no channel left and says so;
`undrain NODE` gives it calls again."""

from __future__ import annotations

import argparse
import subprocess
import time
from typing import Any

from callguard.asterisk.cli import AsteriskCliError, run_cli
from callguard.cli import CliError
from callguard.cluster import (
    DISPATCHER_SET,
    Destination,
    active_channels,
    node_uri,
    parse_dispatcher_list,
    parse_node,
)
from callguard.config import DEFAULT_ENV_FILE, Settings, load_settings

RUN = DEFAULT_ENV_FILE.parent
CLUSTER = RUN / "cluster"


def _nodes() -> list[int]:
    try:
        return [int(line) for line in (CLUSTER / "nodes").read_text().split()]
    except OSError:
        return []


def node_settings() -> list[Settings]:
    """Each running node's settings (its ARI, its Asterisk CLI); [] when no cluster runs."""
    return [load_settings(RUN / "nodes" / f"n{n}" / "callguard.env") for n in _nodes()]


def _kamcmd(*args: str) -> str:
    try:
        done = subprocess.run(["kamcmd", "-s", f"unix:{CLUSTER / 'kamailio_ctl'}", *args],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CliError(f"cannot reach Kamailio: {exc}") from exc
    if done.returncode != 0:
        raise CliError(f"Kamailio: {(done.stderr or done.stdout).strip() or 'kamcmd failed'}")
    return done.stdout


def _destinations() -> dict[str, Destination]:
    return parse_dispatcher_list(_kamcmd("dispatcher.list"))


def _channels(n: int) -> int:
    settings = load_settings(RUN / "nodes" / f"n{n}" / "callguard.env")
    try:
        return active_channels(run_cli(settings, "core show channels count"))
    except (AsteriskCliError, ValueError) as exc:
        raise CliError(f"node n{n}: {exc}") from exc


def _node(name: str) -> int:
    nodes = _nodes()
    try:
        return parse_node(name, nodes)
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc


def _list(args: argparse.Namespace) -> int:
    nodes = _nodes()
    if not nodes:
        raise CliError("no cluster runs (make cluster NODES=2)")
    dests = _destinations()
    print(f"{'node':<6}{'address':<24}{'state':<28}channels")
    for n in nodes:
        d = dests.get(node_uri(n))
        try:
            channels: Any = _channels(n)
        except CliError:
            channels = "- (Asterisk down)"
        print(f"n{n:<5}{node_uri(n):<24}{d.state if d else 'not in dispatcher':<28}{channels}")
    return 0


def _set_state(n: int, state: str) -> None:
    _kamcmd("dispatcher.set_state", state, str(DISPATCHER_SET), node_uri(n))


def _drain(args: argparse.Namespace) -> int:
    n = _node(args.node)
    _set_state(n, "d")
    print(f"n{n}: drained, no new calls; waiting for its calls to end", flush=True)
    deadline = time.monotonic() + args.timeout
    last = -1
    while True:
        left = _channels(n)
        if left == 0:
            print(f"n{n}: empty (0 channels); it can be stopped")
            return 0
        if left != last:
            print(f"n{n}: {left} channel(s) still up", flush=True)
            last = left
        if time.monotonic() > deadline:
            raise CliError(f"n{n}: still {left} channel(s) after {args.timeout:.0f} s "
                           "(it stays drained)")
        time.sleep(0.5)


def _undrain(args: argparse.Namespace) -> int:
    n = _node(args.node)
    _set_state(n, "a")
    print(f"n{n}: takes calls again")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("cluster", help="the nodes behind Kamailio (make cluster)")
    csub = p.add_subparsers(dest="cluster_command", required=True)
    csub.add_parser("list", help="every node, its dispatcher state and live channels"
                    ).set_defaults(handler=_list)
    d = csub.add_parser("drain", help="no new calls for NODE; wait until its calls have ended")
    d.add_argument("node", help="n1, n2, ... (or its address)")
    d.add_argument("--timeout", type=float, default=3600.0,
                   help="give up waiting after this many seconds (default 3600)")
    d.set_defaults(handler=_drain)
    u = csub.add_parser("undrain", help="NODE takes new calls again")
    u.add_argument("node", help="n1, n2, ... (or its address)")
    u.set_defaults(handler=_undrain)


