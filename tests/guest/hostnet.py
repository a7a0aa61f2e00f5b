#!/usr/bin/env python3
"""Host side of the test guest's `net` command, on a tap device.

Sends broadcast frames of ethertype 0x88b5 with payload "HOST NET <seq>"
every --interval seconds and counts the guest's "TESTGUEST NET <seq>"
frames, until --duration passes (or, with --until, once the guest's
--until frames have been seen and at least as many sent).  Prints
`HOSTNET sent=N received=M` and exits 0; waits for the interface to exist
and come up, since the VMM may create or attach it after we start.

    python3 hostnet.py --iface tapq0 --duration 20
"""
import argparse
import socket
import struct
import sys
import time

ETH_P_TEST = 0x88B5
BROADCAST = b"\xff" * 6


def iface_mac(name):
    try:
        with open(f"/sys/class/net/{name}/address") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))
    except OSError:
        return None


def open_socket(iface, deadline):
    """An AF_PACKET socket bound to iface, once it exists."""
    while True:
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_TEST))
            s.bind((iface, ETH_P_TEST))
            s.setblocking(False)
            return s
        except OSError as e:
            if time.monotonic() >= deadline:
                sys.exit(f"hostnet: cannot open {iface}: {e}")
            time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iface", default="tapq0")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run at most")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between frames")
    ap.add_argument("--until", type=int, default=0,
                    help="stop early once this many guest frames were seen")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    end = time.monotonic() + args.duration
    s = open_socket(args.iface, end)
    src = iface_mac(args.iface) or b"\x02\x00\x00\x00\x00\x01"
    sent = received = errors = 0
    next_send = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_send:
            frame = BROADCAST + src + struct.pack("!H", ETH_P_TEST) + f"HOST NET {sent}".encode()
            frame += b"\0" * max(0, 60 - len(frame))
            try:
                s.send(frame)
                sent += 1
            except OSError:
                errors += 1     # the tap is not attached yet: drop, retry later
            next_send = now + args.interval
        try:
            while True:
                data = s.recv(2048)
                if len(data) >= 14 + 13 and data[12:14] == struct.pack("!H", ETH_P_TEST) \
                        and data[14:28] == b"TESTGUEST NET ":
                    received += 1
                    if args.verbose:
                        text = data[14:].rstrip(b"\0").decode(errors="replace")
                        print(f"hostnet: got {text}", flush=True)
        except BlockingIOError:
            pass
        except OSError:
            errors += 1
        if args.until and received >= args.until and sent >= args.until:
            break
        time.sleep(min(0.005, args.interval))
    print(f"HOSTNET sent={sent} received={received} errors={errors}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
