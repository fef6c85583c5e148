#!/usr/bin/python3
"""bench-compare.py: libspice-server (the kit's spice-ref-server) and our daemon (vus-bench)
side by side, on the same workloads, with the same spice-probe clients, in one run.

  scripts/bench-compare.py                      # every workload x 1,2,4,8 clients x 3 pairs
  scripts/bench-compare.py --workloads video --clients 1,4 --pairs lz4=lz4 --duration 5

For every point (workload, client count, encoding pair, repetition) it runs spice-ref-server
and then vus-bench, each through the kit's bench.py `one_run` (server under /usr/bin/time -v,
N spice-probe --timeline clients, rates over the workload window minus its first and last
second), and prints per point: server CPU s/s, updates/s per client, CPU per delivered
client-update, bytes per update, peak RSS, each side's cost of an added client, and the
ratios ours / theirs; then the issue's targets at 4 clients, PASS or FAIL.

An encoding pair is REF=OURS, the --image-compression given to each side: lz4=lz4 and
off=off compare the same encoding; auto_glz=auto_glz compares each side's default
(spice-server's GLZ/QUIC against ours).

The kit (spice-ref-server, spice-probe, bench.py) comes from --kit, else from a fresh copy of
../shared/spice-kit next to this repository, built there (get-spice-server.sh + make). The kit
is only read from and run; bench.py is imported, not changed. Raw data: --out DIR/runs/,
summary: DIR/compare.md and DIR/compare.json.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_KIT = os.path.join(os.path.dirname(REPO), "shared", "spice-kit")
WORKLOADS = "desktop,video,fullscreen,fullhd-video,office"
# The targets, at TARGET_CLIENTS clients on every workload.
TARGET_CLIENTS = 4
SAME_ENCODING_CPU_RATIO = 0.5      # ours / theirs, CPU per delivered client-update
DEFAULT_BYTES_RATIO = 1.5          # ours / auto_glz, bytes per update
DEFAULT_CPU_RATIO = 0.5            # ours / auto_glz, CPU per delivered client-update
ADDED_CLIENT_SHARE = 0.5           # "well below": an added client costs < half the first


def prepare_kit(kit):
    """A kit directory with a built spice-ref-server: --kit as given, or a copy of the
    shared kit built in a temporary directory (never built in place)."""
    if kit:
        if not os.access(os.path.join(kit, "spice-ref-server"), os.X_OK):
            sys.exit("no spice-ref-server in %s (run get-spice-server.sh and make there)" % kit)
        return kit
    if not os.path.isdir(DEFAULT_KIT):
        sys.exit("no kit at %s: pass --kit" % DEFAULT_KIT)
    dest = os.path.join(tempfile.mkdtemp(prefix="spice-kit."), "spice-kit")
    shutil.copytree(DEFAULT_KIT, dest)
    # The shared kit may be read-only; its copy must take the build.
    for root, dirs, files in os.walk(dest):
        for f in [root] + [os.path.join(root, x) for x in files]:
            os.chmod(f, os.stat(f).st_mode | 0o200)
    subprocess.run(["./get-spice-server.sh"], cwd=dest, check=True)
    subprocess.run(["make"], cwd=dest, check=True)
    print("kit built in %s" % dest, flush=True)
    return dest


def build_ours(path):
    """Path of the vus-bench binary: --ours as given, else `cargo build --release`."""
    if path:
        return path
    out = subprocess.run(["cargo", "build", "--release", "--bin", "vus-bench",
                          "--message-format=json"], cwd=REPO, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg["target"]["name"] == "vus-bench":
            return msg["executable"]
    sys.exit("cargo did not report the vus-bench executable")


def load_bench(kit):
    sys.dont_write_bytecode = True      # the kit may be the shared, read-only one
    sys.path.insert(0, kit)
    import bench  # noqa: E402  (the kit's bench.py)
    return bench


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.mean(xs) if xs else None


def point(bench, runs):
    """Medians over repetitions of one side's runs of one point."""
    rows = bench.summarize(runs)
    if len(rows) != 1:
        return None
    r = rows[0]
    n = r["clients"]

    def med(f):
        return bench.med([f(x) for x in runs])
    r["pixels_per_s_per_client"] = med(lambda x: mean(
        [c.get("pixels_per_s") for c in x["clients_data"]]))
    upd, cpu = r["updates_per_s_per_client"], r["server_cpu_per_s"]
    mbps = r["display_MBps_per_client"]
    r["cpu_us_per_update"] = cpu / (upd * n) * 1e6 if cpu is not None and upd else None
    r["bytes_per_update"] = mbps * 1e6 / upd if mbps is not None and upd else None
    px = r["pixels_per_s_per_client"]
    r["cpu_ns_per_pixel"] = cpu / (px * n) * 1e9 if cpu is not None and px else None
    r["bytes_per_pixel"] = mbps * 1e6 / px if mbps is not None and px else None
    return r


def ratio(a, b):
    return a / b if a is not None and b else None


def added_client_share(rows, side, wl, pair, n):
    """An added client's CPU as a share of the first one's, both per delivered pixel:
    (cpu(n) - cpu(1)) / (pixels(n) - pixels(1)) over cpu(1) / pixels(1), with pixels the
    total delivered to all clients per second. With every client at full rate this is
    (cpu(n) - cpu(1)) / (n - 1) / cpu(1); it stays honest when clients fall behind. The
    first client's cost includes the fixed cost of serving at all."""
    one, many = rows.get((side, wl, pair, 1)), rows.get((side, wl, pair, n))
    if n <= 1 or not one or not many:
        return None
    c1, cn = one["server_cpu_per_s"], many["server_cpu_per_s"]
    p1, pn = one["pixels_per_s_per_client"], many["pixels_per_s_per_client"]
    if None in (c1, cn, p1, pn) or c1 <= 0 or p1 <= 0 or pn * n <= p1:
        return None
    return ((cn - c1) / (pn * n - p1)) / (c1 / p1)


def fmt(v, nd=2):
    if v is None:
        return "-"
    return ("%." + str(nd) + "f") % v if isinstance(v, float) else str(v)


def table(rows, workloads, clients, pairs):
    out = ["| workload | pair (ref=ours) | clients | CPU s/s ref / ours | upd/s per client "
           "ref / ours (produced) | Mpx/s per client ref / ours | CPU ns per client-pixel "
           "ref / ours (ratio) | wire bytes per pixel ref / ours (ratio) | CPU µs per "
           "client-update ref / ours | added client / first ref / ours | peak RSS MB "
           "ref / ours | other procs CPU s/s ref / ours | limit ref / ours | errors |",
           "|" + "---|" * 14]
    for wl in workloads:
        for pair in pairs:
            for n in clients:
                a, b = rows.get(("ref", wl, pair, n)), rows.get(("ours", wl, pair, n))
                if not a and not b:
                    continue
                a, b = a or {}, b or {}

                def both(k, nd=2, scale=1.0, with_ratio=False):
                    va, vb = a.get(k), b.get(k)
                    va = va * scale if va is not None else None
                    vb = vb * scale if vb is not None else None
                    cell = "%s / %s" % (fmt(va, nd), fmt(vb, nd))
                    return cell + (" (%s)" % fmt(ratio(vb, va)) if with_ratio else "")
                errs = "; ".join(["ref: " + e for e in a.get("errors", [])] +
                                 ["ours: " + e for e in b.get("errors", [])])[:200]
                produced = b.get("produced_updates_per_s") or a.get("produced_updates_per_s")
                out.append("| %s | %s | %d | %s | %s (%s) | %s | %s | %s | %s | %s / %s | %s "
                           "| %s | %s / %s | %s |" % (
                               wl, pair, n, both("server_cpu_per_s", 3),
                               both("updates_per_s_per_client", 1), fmt(produced, 1),
                               both("pixels_per_s_per_client", 1, 1e-6),
                               both("cpu_ns_per_pixel", 2, with_ratio=True),
                               both("bytes_per_pixel", 3, with_ratio=True),
                               both("cpu_us_per_update", 0),
                               fmt(added_client_share(rows, "ref", wl, pair, n)),
                               fmt(added_client_share(rows, "ours", wl, pair, n)),
                               both("peak_rss_MB", 0), both("foreign_cpu_per_s"),
                               a.get("limit") or "-", b.get("limit") or "-", errs or "-"))
    return "\n".join(out)


def targets(rows, workloads, pairs, clients):
    """The issue's bar at TARGET_CLIENTS clients: one line per workload and check. "Per
    update" is taken per delivered pixel: our server may send one guest command as several
    updates (a 1920x1080 frame is two QXL bands), which would halve a per-update figure
    without saving anything; where both sides send one update per command the two agree."""
    n = TARGET_CLIENTS if TARGET_CLIENTS in clients else max(clients)
    out = ["| workload | check (at %d clients; per update = per delivered pixel) | value | "
           "target | result |" % n, "|---|---|---|---|---|"]

    def line(wl, what, v, limit):
        res = "-" if v is None else ("PASS" if v <= limit else "FAIL")
        out.append("| %s | %s | %s | ≤ %.2f | %s |" % (wl, what, fmt(v), limit, res))
    for wl in workloads:
        for pair in pairs:
            a, b = rows.get(("ref", wl, pair, n)), rows.get(("ours", wl, pair, n))
            if not a or not b:
                continue
            ref_comp, our_comp = pair.split("=")
            cpu = ratio(b["cpu_ns_per_pixel"], a["cpu_ns_per_pixel"])
            if ref_comp == "auto_glz":
                line(wl, "our default vs auto_glz: bytes per update, ours / theirs",
                     ratio(b["bytes_per_pixel"], a["bytes_per_pixel"]), DEFAULT_BYTES_RATIO)
                line(wl, "our default vs auto_glz: CPU per update, ours / theirs", cpu,
                     DEFAULT_CPU_RATIO)
            else:
                line(wl, "%s: CPU per update, ours / theirs" % pair, cpu,
                     SAME_ENCODING_CPU_RATIO)
            line(wl, "%s: our added client's CPU / our first client's" % pair,
                 added_client_share(rows, "ours", wl, pair, n), ADDED_CLIENT_SHARE)
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kit", help="a kit directory with a built spice-ref-server")
    p.add_argument("--ours", help="the vus-bench binary (default: cargo build --release)")
    p.add_argument("--workloads", default=WORKLOADS)
    p.add_argument("--clients", default="1,2,4,8")
    p.add_argument("--pairs", default="lz4=lz4,off=off,auto_glz=auto_glz",
                   help="REF=OURS --image-compression pairs")
    p.add_argument("--sides", default="ref,ours", help="run only one side with 'ref' or 'ours'")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--probe-slack", type=float, default=2,
                   help="extra seconds for probes and server linger (8 probes connect slowly)")
    p.add_argument("--port", type=int, default=6100)
    p.add_argument("--pin", action="store_true", help="servers on CPU 0, probes on CPU 1")
    p.add_argument("--server-args", default="", help="extra options for both servers")
    p.add_argument("--out", default=os.path.join(REPO, "target", "bench-compare"))
    p.add_argument("--max-foreign", type=float, default=None,
                   help="run a point again when processes outside the run used more than "
                   "this many CPU s/s during its window (bench.py's option)")
    p.add_argument("--retries", type=int, default=2, help="at most this many repeats")
    p.add_argument("--from-runs", action="store_true",
                   help="run nothing: summarize the runs already under --out/runs")
    a = p.parse_args()

    if a.from_runs:
        return summarize_saved(a)
    kit = prepare_kit(a.kit)
    sides = a.sides.split(",")
    binaries = {"ref": os.path.join(kit, "spice-ref-server")}
    if "ours" in sides:
        binaries["ours"] = build_ours(a.ours)
    bench = load_bench(kit)
    os.makedirs(os.path.join(a.out, "runs"), exist_ok=True)
    run_args = argparse.Namespace(out=a.out, pin=a.pin, server_args=a.server_args,
                                  probe_slack=a.probe_slack, duration=a.duration)
    workloads, pairs = a.workloads.split(","), a.pairs.split(",")
    clients = [int(x) for x in a.clients.split(",")]
    runs = {}
    port = a.port
    for rep in range(a.reps):
        for wl in workloads:
            for n in clients:
                for pair in pairs:
                    comps = dict(zip(("ref", "ours"), pair.split("=")))
                    for side in sides:
                        bench.SERVER = binaries[side]
                        for attempt in range(a.retries + 1):
                            port += 1
                            name = "%s-%s-%s-%dc-r%d" % (side, wl, comps[side], n, rep + 1)
                            name += "-again%d" % attempt if attempt else ""
                            r = bench.one_run(run_args, name, wl, comps[side], n, port)
                            fr = r.get("foreign_cpu_per_s")
                            if a.max_foreign is None or fr is None or fr <= a.max_foreign:
                                break
                            print("%-40s other processes used %.2f CPU s/s%s" % (
                                name, fr, ": run again" if attempt < a.retries else ""),
                                flush=True)
                        runs.setdefault((side, wl, pair, n), []).append(r)
                        s = r["server"]
                        print("%-40s cpu/s=%s upd/s=%s MB/s=%s rss=%s %s" % (
                            name, fmt(s.get("server_cpu_per_s"), 3),
                            [round(c.get("updates_per_s", 0), 1) for c in r["clients_data"]],
                            [round(c.get("display_bytes_per_s", 0) / 1e6, 2)
                             for c in r["clients_data"]],
                            r["time_v"].get("max_rss_kb"), r["errors"] or ""), flush=True)
    report(a, bench, runs, binaries)


def summarize_saved(a):
    """The tables again from DIR/runs/*.result.json (e.g. after changing this script)."""
    bench = load_bench(a.kit or DEFAULT_KIT)     # only bench.py's summary code is used
    pairs = a.pairs.split(",")
    runs = {}
    rundir = os.path.join(a.out, "runs")
    latest = {}     # a run repeated for --max-foreign counts once: its last attempt
    for f in sorted(os.listdir(rundir)):
        if not f.endswith(".result.json"):
            continue
        with open(os.path.join(rundir, f)) as fh:
            r = json.load(fh)
        base, _, again = r["name"].partition("-again")
        attempt = int(again or 0)
        if base not in latest or latest[base][0] < attempt:
            latest[base] = (attempt, r)
    for _, r in latest.values():
        side = r["name"].split("-", 1)[0]
        for pair in pairs:
            if dict(zip(("ref", "ours"), pair.split("="))).get(side) == r["compression"]:
                runs.setdefault((side, r["workload"], pair, r["clients"]), []).append(r)
    report(a, bench, runs, {})


def report(a, bench, runs, binaries):
    workloads, pairs = a.workloads.split(","), a.pairs.split(",")
    clients = [int(x) for x in a.clients.split(",")]
    rows = {k: point(bench, v) for k, v in runs.items()}
    md = table(rows, workloads, clients, pairs) + "\n\n" + targets(rows, workloads, pairs,
                                                                    clients)
    with open(os.path.join(a.out, "compare.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(a.out, "compare.json"), "w") as f:
        json.dump({"rows": [dict(v, side=k[0], pair=k[2]) for k, v in rows.items() if v],
                   "binaries": binaries, "duration": a.duration, "reps": a.reps,
                   "pin": a.pin, "cpus": os.cpu_count()}, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
