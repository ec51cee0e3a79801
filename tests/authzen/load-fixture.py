#!/usr/bin/env python3
"""Loads the AuthZEN certification fixture (fixture.json, beside this file) into a running
iamd through its own JSON API, so the scenario's requests have something to decide.

    tests/authzen/load-fixture.py --url http://127.0.0.1:8080 --token "$IAMD_BOOTSTRAP_TOKEN"

Idempotent: an object that exists already (409) is left as it is. Standard library only.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("IAMD_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("IAMD_TOKEN", ""), help="an API token allowed to create users and policies")
    args = parser.parse_args()
    if not args.token:
        print("load-fixture: give --token (or IAMD_TOKEN)", file=sys.stderr)
        return 2
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixture.json"), encoding="utf-8") as f:
        calls = json.load(f)["calls"]
    for call in calls:
        request = urllib.request.Request(
            args.url.rstrip("/") + call["path"],
            data=json.dumps(call["body"]).encode(),
            method=call["method"],
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {args.token}"},
        )
        what = f'{call["method"]} {call["path"]} {call["body"].get("id", "")}'
        try:
            with urllib.request.urlopen(request) as response:
                print(f"{what}: {response.status}")
        except urllib.error.HTTPError as error:
            if error.code == 409:
                print(f"{what}: exists already")
                continue
            print(f"{what}: {error.code} {error.read().decode(errors='replace')}", file=sys.stderr)
            return 1
        except urllib.error.URLError as error:
            print(f"{what}: iamd does not answer at {args.url}: {error.reason}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
