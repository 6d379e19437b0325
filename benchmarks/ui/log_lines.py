"""The live-log benchmark's job: waits for the page, then logs timestamped lines.

Each line is ``line <n> <epoch ms when written>``; the page records when it shows each.
"""

import time


def main(params):
    time.sleep(float(params.get("wait_s", 3.0)))  # the page is open and following by then
    for n in range(int(params.get("lines", 100))):
        print(f"line {n} {time.time() * 1000:.1f}", flush=True)
        time.sleep(float(params.get("every_s", 0.1)))
    return {}
