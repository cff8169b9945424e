"""Summaries, the printed tables and the targets of ``benchmarks/run.py``.

Pure functions over the result dicts the orchestrator collects, so the numbers
printed and the numbers written to JSON are the same numbers.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = [
    "CLIENT_ORDER",
    "SERVER_BOUND",
    "evaluate_targets",
    "format_report",
    "summarize_clients",
]

#: The compared clients, in the order of the issue (1-6).
CLIENT_ORDER = (
    "ceiling-parse",
    "ceiling-socket",
    "streamkit-stream",
    "streamkit-collect",
    "baseline-tweepy",
    "baseline-requests",
)
#: A client at or above this share of the server's rate (or a server this busy) is server-bound.
SERVER_BOUND = 0.9


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_clients(runs: dict[str, list[dict[str, Any]]], expected: int,
                      server_rate: float | None) -> dict[str, dict[str, Any]]:
    """Median messages/s, peak RSS, CPU seconds and flags for each client.

    A run counts only if it had no error and received all *expected* messages.

    Examples
    --------
    >>> runs = {"x": [{"messages": 10, "seconds": 1.0, "cpu_seconds": 0.5, "peak_rss_mb": 30},
    ...               {"messages": 10, "seconds": 2.0, "cpu_seconds": 0.7, "peak_rss_mb": 31},
    ...               {"error": "boom"}]}
    >>> s = summarize_clients(runs, 10, server_rate=100.0)["x"]
    >>> s["msgs_per_s"], s["peak_rss_mb"], s["good_runs"], s["failed_runs"]
    (7.5, 31, 2, 1)
    """
    out: dict[str, dict[str, Any]] = {}
    for name, items in runs.items():
        good = [r for r in items if not r.get("error") and r.get("messages") == expected
                and r.get("seconds", 0) > 0]
        rates = [r["messages"] / r["seconds"] for r in good]
        busy = [r["server_busy"] for r in good if r.get("server_busy") is not None]
        rate = _median(rates)
        cpu = _median([r["cpu_seconds"] for r in good])
        s: dict[str, Any] = {
            "msgs_per_s": rate,
            "msgs_per_s_runs": rates,
            "seconds": _median([r["seconds"] for r in good]),
            "cpu_seconds": cpu,
            "cpu_us_per_msg": cpu / expected * 1e6 if cpu is not None and expected else None,
            "peak_rss_mb": max((r["peak_rss_mb"] for r in good), default=None),
            "rss_start_mb": _median([r["rss_start_mb"] for r in good if "rss_start_mb" in r]),
            "server_busy": _median(busy),
            "good_runs": len(good),
            "failed_runs": len(items) - len(good),
            "errors": sorted({str(r.get("error") or f"received {r.get('messages')} of {expected}")
                              for r in items if r not in good}),
        }
        uses_server = any(r.get("server") for r in good)  # ceiling-parse reads from memory
        share = rate / server_rate if rate and server_rate and uses_server else None
        s["share_of_server"] = share
        s["server_bound"] = uses_server and bool((share is not None and share >= SERVER_BOUND)
                                                 or (s["server_busy"] or 0) >= SERVER_BOUND)
        out[name] = s
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The ratios the issue asks for (and two more)."""
    rate = {k: v.get("msgs_per_s") for k, v in summary.items()}
    return {
        "collect_vs_tweepy": _ratio(rate.get("streamkit-collect"), rate.get("baseline-tweepy")),
        "collect_vs_requests": _ratio(rate.get("streamkit-collect"), rate.get("baseline-requests")),
        "collect_vs_ceiling_parse": _ratio(rate.get("streamkit-collect"), rate.get("ceiling-parse")),
        "stream_vs_ceiling_socket": _ratio(rate.get("streamkit-stream"), rate.get("ceiling-socket")),
    }


def _target(name: str, value: float | None, limit: float, op: str, unit: str = "",
            note: str = "") -> dict[str, Any]:
    if value is None:
        return {"target": name, "value": None, "limit": limit, "op": op, "met": None,
                "margin": None, "note": note or "not measured"}
    met = value >= limit if op == ">=" else value <= limit
    # margin > 0: better than the target by that share; < 0: short of it by that share
    margin = (value / limit - 1.0) if op == ">=" else (1.0 - value / limit if limit else 0.0)
    return {"target": name, "value": value, "limit": limit, "op": op, "unit": unit, "met": met,
            "margin": margin, "note": note}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: value, limit, met or not, and by how much.

    ``margin`` is the share by which the value beats the limit (negative: short of it).

    Examples
    --------
    >>> [t] = evaluate_targets({"idle": {"cpu_percent": 3.0, "seconds": 30.0}})
    >>> t["target"], t["met"], round(t["margin"], 2)
    ('idle CPU <= 2% of one core', False, -0.5)
    """
    out: list[dict[str, Any]] = []
    thr = results.get("throughput") or {}
    if thr:
        last = thr[max(thr, key=int)]
        r = last["ratios"]
        summ = last["clients"]

        def bound(subject: str, reference: str | None = None) -> str:
            # A server-bound subject runs faster than measured: its ratio is a lower bound.
            # A server-bound reference (a ceiling) is really higher: the ratio is optimistic.
            notes = []
            if summ.get(subject, {}).get("server_bound"):
                notes.append(f"{subject} is server-bound: ratio is a lower bound")
            if reference and summ.get(reference, {}).get("server_bound"):
                notes.append(f"{reference} is server-bound: ratio is optimistic")
            return "; ".join(notes)

        size = f"{int(max(thr, key=int)):,} statuses"
        for name, value, limit, subject, reference in (
            ("streamkit-collect >= 10x baseline-tweepy", r["collect_vs_tweepy"], 10,
             "streamkit-collect", "baseline-tweepy"),
            ("streamkit-collect >= 0.6x ceiling-parse", r["collect_vs_ceiling_parse"], 0.6,
             "streamkit-collect", None),
            ("streamkit-stream >= 0.9x ceiling-socket", r["stream_vs_ceiling_socket"], 0.9,
             "streamkit-stream", "ceiling-socket"),
        ):
            note = "; ".join(x for x in (size, bound(subject, reference)) if x)
            out.append(_target(name, value, limit, ">=", "x", note=note))
    mem = results.get("memory")
    if mem and (not mem.get("error") or mem.get("aborted_rss_mb")):
        small, big = (int(x) for x in results["plan"]["memory_sizes"])
        cps = mem.get("checkpoints") or {}
        q = "" if (small, big) == (200_000, 1_000_000) else (
            f"measured at {small:,}/{big:,} instead of 200,000/1,000,000")
        if mem.get("aborted_rss_mb"):  # the guard ended it: the true peak is higher still
            rss_big = mem["aborted_rss_mb"]
            q = "; ".join(x for x in (q, f"aborted by the RSS guard at {mem['stored']:,} "
                                         "stored: a lower bound") if x)
        else:
            rss_big = (cps.get(str(big)) or {}).get("peak_rss_mb")
        rss_small = (cps.get(str(small)) or {}).get("peak_rss_mb")
        out.append(_target(f"peak RSS at {big:,} statuses <= 300 MB", rss_big, 300, "<=",
                           " MB", note=q))
        growth = _ratio(rss_big, rss_small)
        first = cps.get(str(small)) or {}
        if first.get("stored", 0) >= big:  # one commit took `stored` past both sizes
            growth = None
            q = "; ".join(x for x in (q, f"not measurable: one commit took stored from below "
                                         f"{small:,} to {first['stored']:,}") if x)
        out.append(_target(f"peak RSS at {big:,} <= 1.10x at {small:,}", growth, 1.10, "<=",
                           "x", note=q))
    lat = results.get("latency")
    if lat and not lat.get("error"):
        rate = lat.get("rate_sent") or 0
        note = f"server sent {rate:,.0f}/s" + (
            " (below the 10,000/s asked for)" if rate < 0.9 * (lat.get("rate_target") or 0) else "")
        asked = int(lat.get("rate_target") or 0)
        if asked != 10_000:
            note += f"; asked for {asked:,}/s instead of 10,000/s"
        out.append(_target(f"live view p99 <= 1 s at {asked:,} statuses/s", lat["view"]["p99"],
                           1.0, "<=", " s", note=note))
        limit = lat["flush_seconds"] + 1.0
        out.append(_target(f"committed within flush_seconds + 1 s (max, {limit:g} s)",
                           lat["committed"]["max"], limit, "<=", " s",
                           note=f"p99 {_fmt(lat['committed']['p99'], 's')}"))
    idle = results.get("idle")
    if idle and not idle.get("error"):
        out.append(_target("idle CPU <= 2% of one core", idle["cpu_percent"], 2.0, "<=", "%",
                           note=f"over {idle['seconds']:.0f} s of keep-alives"))
    return out


# -- formatting --------------------------------------------------------------------------
def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "mb":
        return f"{value:,.0f}"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "s":
        return f"{value:.3f} s"
    return f"{value:.2f}"


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    digits = {"x": 2, " MB": 0, " s": 3, "%": 2}.get(unit, 3)
    return f"{value:,.{digits}f}{unit}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return lines


def _throughput_lines(size: str, t: dict[str, Any]) -> list[str]:
    cap = t["capture"]
    lines = [
        "",
        f"Throughput: {int(size):,} statuses + {cap['messages'] - cap['statuses']:,} notices "
        f"= {cap['messages']:,} messages, mean {cap['mean_kb']:.1f} KB, "
        f"{t['runs']} run(s) each, median",
    ]
    summ = t["clients"]
    tweepy = (summ.get("baseline-tweepy") or {}).get("msgs_per_s")
    parse = (summ.get("ceiling-parse") or {}).get("msgs_per_s")
    rows = []
    for name in CLIENT_ORDER:
        s = summ.get(name)
        if s is None:
            continue
        rate = s["msgs_per_s"]
        flag = "  SERVER-BOUND" if s["server_bound"] else ""
        if s["failed_runs"]:
            flag += f"  {s['failed_runs']} FAILED: {'; '.join(s['errors'])[:120]}"
        rows.append([name, _fmt(rate, "rate"),
                     _fmt(rate * cap["mean_kb"] / 1024 if rate else None),
                     _fmt(_ratio(rate, tweepy), "x"), _fmt(_ratio(rate, parse), "x"),
                     _fmt(s["peak_rss_mb"], "mb"), _fmt(s["cpu_seconds"]),
                     _fmt(s["cpu_us_per_msg"], "rate"), _fmt(s["server_busy"], "pct") + flag])
    lines += _table(["client", "msgs/s", "MB/s", "vs tweepy", "vs parse", "peak RSS MB", "CPU s",
                     "CPU us/msg", "server busy"], rows)
    lines.append("msgs/s and CPU s (whole process, all threads, over the measured window): median "
                 "of the runs; peak RSS: highest VmHWM of a run (imports included); server busy: "
                 "server CPU / client wall time.")
    srv = t.get("server") or {}
    r = t["ratios"]
    lines += [
        "",
        f"Ratios: collect/tweepy {_fmt(r['collect_vs_tweepy'], 'x')}, collect/requests "
        f"{_fmt(r['collect_vs_requests'], 'x')}, collect/ceiling-parse "
        f"{_fmt(r['collect_vs_ceiling_parse'], 'x')}, stream/ceiling-socket "
        f"{_fmt(r['stream_vs_ceiling_socket'], 'x')}",
        f"Server check: the server alone (raw socket, bytes discarded) sends "
        f"{_fmt(srv.get('msgs_per_s'), 'rate')} msgs/s ({_fmt(srv.get('mb_per_s'))} MB/s, "
        f"server process busy {_fmt(srv.get('server_busy'), 'pct')}).",
    ]
    bound = [n for n in CLIENT_ORDER if (summ.get(n) or {}).get("server_bound")]
    if bound:
        lines.append(f"  WARNING: the server is the bottleneck for: {', '.join(bound)} "
                     f"(>= {SERVER_BOUND:.0%} of the server's rate, or the server >= "
                     f"{SERVER_BOUND:.0%} busy); their rates are lower bounds.")
    else:
        lines.append(f"  No client reached {SERVER_BOUND:.0%} of the server's rate: "
                     "the server was not the bottleneck.")
    return lines


def format_report(results: dict[str, Any]) -> str:
    """The whole printed report."""
    lines = [f"streamkit benchmark ({results['mode']} mode)  {results['started']}",
             f"command: {results['command']}"]
    env = results["environment"]
    lines.append(f"python {env['python']}, {env['cpus']} CPUs, load {env['loadavg']}, "
                 f"streamkit {env['versions'].get('streamkit')} @ {env.get('git_commit', '?')}"
                 f"{' (+uncommitted changes)' if env.get('git_dirty') else ''}")
    for size, t in sorted((results.get("throughput") or {}).items(), key=lambda kv: int(kv[0])):
        lines += _throughput_lines(size, t)
    mem = results.get("memory")
    if mem:
        speed = f"{mem['rate']:,}/s" if mem.get("rate") else "full speed"
        lines += ["", f"Memory over length (collect, keep_raw=True, server at {speed}; peak RSS "
                      "read when `stored` first reaches each size):"]
        rows = [[f"{int(k):,} statuses", _fmt(v["peak_rss_mb"], "mb"), _fmt(v["rss_mb"], "mb"),
                 f"{v['at_seconds']:.1f} s"]
                for k, v in sorted((mem.get("checkpoints") or {}).items(),
                                   key=lambda kv: int(kv[0]))]
        if rows:
            lines += ["  " + x for x in _table(["stored", "peak RSS MB", "RSS MB", "at"], rows)]
        if mem.get("error"):
            lines.append(f"  {'ABORTED' if mem.get('aborted_rss_mb') else 'FAILED'}: "
                         f"{mem['error']}")
        if mem.get("note"):
            lines.append(f"  ({mem['note']})")
    lat = results.get("latency")
    if lat:
        lines += ["", "Live-view latency (collect with default settings; send time from the "
                      "status's snowflake id):"]
        if lat.get("error"):
            lines.append(f"  FAILED: {lat['error']}")
        else:
            rows = []
            for key, label in (("network_to_wal", "sent -> received_at (WAL)"),
                               ("view", "sent -> Collector.df"),
                               ("committed", "sent -> committed Parquet")):
                p = lat[key]
                rows.append([label, _fmt(p["p50"], "s"), _fmt(p["p90"], "s"),
                             _fmt(p["p99"], "s"), _fmt(p["max"], "s"), f"{p['n']:,}"])
            lines += ["  " + x for x in _table(["", "p50", "p90", "p99", "max", "rows"], rows)]
            lines.append(f"  server sent {_fmt(lat.get('rate_sent'), 'rate')}/s (asked "
                         f"{_fmt(lat.get('rate_target'), 'rate')}/s); df polled every 10 ms, "
                         f"{_fmt((lat.get('mean_df_seconds') or 0) * 1000)} ms per c.df call; "
                         f"{lat['observed_in_view']:,} of {lat['statuses']:,} rows seen in the "
                         f"view (ring of {lat['view_rows']:,}); flush_seconds="
                         f"{lat['flush_seconds']:g}")
    idle = results.get("idle")
    if idle:
        lines += ["", "Idle cost (collect on a stream of keep-alives only):"]
        if idle.get("error"):
            lines.append(f"  FAILED: {idle['error']}")
        else:
            lines.append(f"  {idle['cpu_seconds']:.3f} CPU s over {idle['seconds']:.1f} s = "
                         f"{idle['cpu_percent']:.2f}% of one core (keep-alive every "
                         f"{idle['keepalive_interval']:g} s)")
    lines += ["", "Targets:"]
    rows = []
    for t in results.get("targets") or []:
        if t["met"] is None:
            verdict = "not measured"
        else:
            how = f"{abs(t['margin']):.0%} {'better' if t['margin'] >= 0 else 'short'}"
            verdict = ("met" if t["met"] else "NOT MET") + f" ({how})"
        value = _fmt_value(t["value"], t.get("unit", ""))
        rows.append([t["target"], value, verdict, t.get("note") or ""])
    lines += ["  " + x for x in _table(["target", "value", "verdict", "note"], rows)]
    for w in results.get("warnings") or []:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)
