"""A job that prints a numbered line every ``pause`` seconds, ``lines`` times."""

import time


def main(params):
    for i in range(params.get("lines", 10)):
        print(f"tick {i}", flush=True)
        time.sleep(params.get("pause", 0.2))
    return {"lines": params.get("lines", 10)}
