# helm test: the Envoy behind the metrics Service holds its ADS stream to Atlas
# (envoy_control_plane_connected_state 1). argv: the metrics URL, seconds to wait (60).
import sys
import time
import urllib.request

url = sys.argv[1]
deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 60)
last = "no answer"
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        states = [s for s in text.splitlines() if s.startswith("envoy_control_plane_connected")]
        if states and all(s.rsplit(" ", 1)[-1] == "1" for s in states):
            print("connected to Atlas's ADS:", *states)
            sys.exit(0)
        last = "; ".join(states) or "no envoy_control_plane_connected_state in the metrics"
    except OSError as err:
        last = f"{url}: {err}"
    if time.monotonic() > deadline:
        print("not connected to Atlas's ADS:", last)
        sys.exit(1)
    time.sleep(2)
