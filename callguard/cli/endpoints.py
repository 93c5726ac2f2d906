"""`callguard endpoints list|create|update|delete` and `callguard channels list|set`: customer
equipment, identified by source address (SEC-1), and the channels billed per line (BILL-*).

The database is what callguard decides with; Asterisk's PJSIP configuration must describe
the same endpoints: `callguard check` reports any difference.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from callguard.cli._admin import add_listing_args, emit, emit_page, run
from callguard.services import endpoints

_COLUMNS = [
    ("NAME", lambda e: e["name"]), ("CONTRACT", lambda e: e["contract"]),
    ("ADDRESS", lambda e: e["address"]), ("EXT", lambda e: e["extension"]),
    ("CHANNELS", lambda e: e["channels"]), ("ROAMING", lambda e: "yes" if e["roaming"] else "-"),
    ("NUMBERS", lambda e: " ".join(e["numbers"]) or "-"),
]


def _list(args: argparse.Namespace) -> int:
    page = run(lambda s: endpoints.list_endpoints(s, args.contract, args.limit, args.offset))
    return emit_page(args, page, _COLUMNS)


def _create(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        return endpoints.endpoint_json(s, endpoints.create_endpoint(
            s, args.name, args.contract, args.address, args.extension, args.channels,
            args.roaming))

    data = run(work)
    return emit(args, data, f"endpoint {data['name']} ({data['address']}, extension "
                f"{data['extension']}, {data['channels']} ch) created in {data['contract']}; "
                "add it to Asterisk's PJSIP configuration too (callguard check)")


def _update(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        return endpoints.endpoint_json(s, endpoints.update_endpoint(
            s, args.name, args.address, args.extension, args.channels, args.roaming))

    data = run(work)
    return emit(args, data, f"endpoint {data['name']} updated")


def _delete(args: argparse.Namespace) -> int:
    run(lambda s: endpoints.delete_endpoint(s, args.name))
    print(f"endpoint {args.name} deleted")
    return 0


def _channels_list(args: argparse.Namespace) -> int:
    page = run(lambda s: endpoints.list_endpoints(s, args.contract, args.limit, args.offset))
    return emit_page(args, page, [_COLUMNS[1], _COLUMNS[0], _COLUMNS[4]])


def _channels_set(args: argparse.Namespace) -> int:
    def work(s: Session) -> dict[str, Any]:
        return endpoints.endpoint_json(s, endpoints.update_endpoint(s, args.endpoint,
                                                            channels=args.channels))

    data = run(work)
    return emit(args, data, f"endpoint {data['name']}: {data['channels']} channel(s)")


def register(sub: Any) -> None:
    p = sub.add_parser("endpoints", help="customer equipment (one per source address)",
                       description=__doc__)
    esub = p.add_subparsers(dest="endpoints_command", required=True, metavar="ACTION")
    ls = esub.add_parser("list", help="endpoints, with their numbers")
    ls.add_argument("--contract")
    add_listing_args(ls)
    ls.set_defaults(handler=_list)
    cr = esub.add_parser("create", help="a new endpoint of a contract")
    cr.add_argument("name", help="PJSIP endpoint name, e.g. f3-a")
    cr.add_argument("--contract", required=True)
    cr.add_argument("--address", required=True, help="its source address (and SIP host)")
    cr.add_argument("--extension", required=True, help="its extension inside the contract")
    cr.add_argument("--channels", type=int, default=1, help="fixed lines: channels (default 1)")
    cr.add_argument("--roaming", action="store_true", help="mobile: abroad (never recorded)")
    cr.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    cr.set_defaults(handler=_create)
    up = esub.add_parser("update", help="change an endpoint")
    up.add_argument("name")
    up.add_argument("--address")
    up.add_argument("--extension")
    up.add_argument("--channels", type=int)
    up.add_argument("--roaming", action=argparse.BooleanOptionalAction, default=None)
    up.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    up.set_defaults(handler=_update)
    rm = esub.add_parser("delete", help="delete an endpoint that rings no number")
    rm.add_argument("name")
    rm.set_defaults(handler=_delete)

    ch = sub.add_parser("channels", help="channels of fixed lines (billed per channel)")
    chsub = ch.add_subparsers(dest="channels_command", required=True, metavar="ACTION")
    cl = chsub.add_parser("list", help="channels per endpoint")
    cl.add_argument("--contract")
    add_listing_args(cl)
    cl.set_defaults(handler=_channels_list)
    cs = chsub.add_parser("set", help="set an endpoint's channel count")
    cs.add_argument("endpoint")
    cs.add_argument("channels", type=int)
    cs.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    cs.set_defaults(handler=_channels_set)
